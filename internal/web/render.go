package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/accounts"
	"github.com/pocketmolt/pocketmolt/internal/httpapi"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

//go:embed templates/*.html static/*
var assets embed.FS

// pages are the parsed templates, one set per page (each with the layout), and the static
// files with the short hash of their content that their URLs carry, so browsers may cache
// them for good.
type pages struct {
	tmpl   map[string]*template.Template
	static map[string]staticFile
}

type staticFile struct {
	body        []byte
	hash, ctype string
}

func loadPages() (*pages, error) {
	p := &pages{tmpl: map[string]*template.Template{}, static: map[string]staticFile{}}
	files, err := fs.ReadDir(assets, "static")
	if err != nil {
		return nil, fmt.Errorf("web: read static files: %w", err)
	}
	for _, f := range files {
		b, err := assets.ReadFile("static/" + f.Name())
		if err != nil {
			return nil, fmt.Errorf("web: read static file %s: %w", f.Name(), err)
		}
		sum := sha256.Sum256(b)
		ctype := mime.TypeByExtension(path.Ext(f.Name()))
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		p.static[f.Name()] = staticFile{body: b, hash: hex.EncodeToString(sum[:6]), ctype: ctype}
	}
	funcs := template.FuncMap{
		"static": func(name string) (string, error) {
			f, ok := p.static[name]
			if !ok {
				return "", fmt.Errorf("no static file %q", name)
			}
			return "/static/" + name + "?v=" + f.hash, nil
		},
	}
	names, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("web: list templates: %w", err)
	}
	for _, n := range names {
		base := path.Base(n)
		if base == "layout.html" || base == "parts.html" {
			continue
		}
		t, err := template.New(base).Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/parts.html", n)
		if err != nil {
			return nil, fmt.Errorf("web: parse %s: %w", base, err)
		}
		p.tmpl[strings.TrimSuffix(base, ".html")] = t
	}
	return p, nil
}

// static serves the embedded static files. A URL with the file's current hash is cached for
// a year; any other for five minutes.
func (s *Server) static() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, ok := s.pages.static[strings.TrimPrefix(r.URL.Path, "/static/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", f.ctype)
		if r.URL.Query().Get("v") == f.hash {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			w.Header().Set("Cache-Control", "public, max-age=300")
		}
		w.Header().Set("ETag", `"`+f.hash+`"`)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
	})
}

// view is what every page's template gets.
type view struct {
	Title    string
	Desc     string
	Page     string // the page's name, a class on <body>
	User     *accounts.User
	TestMode bool
	Notice   string // a confirmation at the top of the page
	Error    string // an error about the whole form or page
	// Values are what the person typed, shown again; never a password, token or key.
	Values map[string]string
	// Errors are per field, shown next to it.
	Errors map[string]string
	Data   any

	key []byte // the CSRF key forms are signed with
	now time.Time
}

// CSRF is the token of the form that posts to action.
func (v *view) CSRF(action string) string { return signForm(v.key, action, v.now) }

// Err is the error of a field, or "".
func (v *view) Err(field string) string { return v.Errors[field] }

// Val is what was typed in a field, or "".
func (v *view) Val(field string) string { return v.Values[field] }

// Checked reports whether a checkbox or radio field holds value.
func (v *view) Checked(field, value string) bool { return v.Values[field] == value }

// Described is the aria-describedby list of a field: its hint when it has one, and its error.
func (v *view) Described(field string, hint bool) string {
	var ids []string
	if hint {
		ids = append(ids, field+"-hint")
	}
	if v.Errors[field] != "" {
		ids = append(ids, field+"-error")
	}
	if v.Error != "" && len(v.Errors) == 0 {
		ids = append(ids, "form-error")
	}
	return strings.Join(ids, " ")
}

func (s *Server) newView(title, page string, key []byte) *view {
	return &view{Title: title, Page: page, TestMode: s.bill.TestMode(), Values: map[string]string{}, Errors: map[string]string{}, key: key, now: s.now()}
}

// render writes a page. It renders into a buffer first, so a template error is a clean 500
// and not half a page.
func (s *Server) render(w http.ResponseWriter, status int, name string, v *view) error {
	t, ok := s.pages.tmpl[name]
	if !ok {
		return fmt.Errorf("render: no template %q", name)
	}
	var b bytes.Buffer
	if err := t.ExecuteTemplate(&b, "layout", v); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	// Pages carry form tokens and personal data: not for any cache.
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
	return nil
}

// pageError is an error shown as a page of its own.
type pageError struct {
	status         int
	title, message string
	retryAfter     time.Duration
}

func (e *pageError) Error() string { return e.title + ": " + e.message }

// errForm is the answer to a form whose token is missing, wrong or expired, or a post from
// another site: nothing was done.
var errForm = &pageError{status: http.StatusForbidden, title: "This form has expired",
	message: "For your security, forms work for a limited time and only on this site. Reload the page and try again — nothing was changed."}

// somethingWrong is what a customer reads when an internal error happened; the details are
// in the log under the request's id.
const somethingWrong = "Something went wrong on our side. Try again in a moment."

// handlerFunc is a page handler that returns its error to one wrapper.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// page adapts fn: its error becomes an error page and one log line with the request's id.
func (s *Server) page(fn handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := requestID(w, r)
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			what := fmt.Sprintf("%T", v)
			if re, ok := v.(runtime.Error); ok {
				what = re.Error()
			}
			s.log.ErrorContext(r.Context(), "page handler panicked", "request_id", id, "path", r.URL.Path, "panic", what)
			s.errorPage(w, r, id, &pageError{status: http.StatusInternalServerError, title: "Something went wrong", message: somethingWrong})
		}()
		if err := fn(w, r); err != nil {
			s.errorPage(w, r, id, s.toPageError(r, id, err))
		}
	})
}

// toPageError maps a handler's error to what the customer sees, logging it once.
func (s *Server) toPageError(r *http.Request, id string, err error) *pageError {
	log := s.log.With("request_id", id, "method", r.Method, "path", r.URL.Path)
	var pe *pageError
	var we *wire.Error
	switch {
	case errors.As(err, &pe):
		if pe.status >= 500 {
			log.ErrorContext(r.Context(), "page failed", "error", err.Error())
		}
		return pe
	case errors.As(err, &we) && wire.HTTPStatus(we.Code) < 500:
		log.InfoContext(r.Context(), "request refused", "code", we.Code, "error", we.Message)
		st := wire.HTTPStatus(we.Code)
		return &pageError{status: st, title: http.StatusText(st), message: sentence(we.Message), retryAfter: we.RetryAfter}
	default:
		log.ErrorContext(r.Context(), "page failed", "error", err.Error())
		return &pageError{status: http.StatusInternalServerError, title: "Something went wrong", message: somethingWrong + " (Reference: " + id + ")"}
	}
}

func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, id string, pe *pageError) {
	if pe.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64((pe.retryAfter+time.Second-1)/time.Second), 10))
	}
	v := s.newView(pe.title, "error", nil)
	v.Data = pe
	// A logged-in customer keeps their header (and its way back to the dashboard).
	if sess, ok := s.loggedIn(r); ok {
		v.User, v.key = &sess.User, sess.CSRFKey
	}
	if err := s.render(w, pe.status, "error", v); err != nil {
		s.log.Error("render error page failed", "request_id", id, "error", err.Error())
		http.Error(w, pe.message, pe.status)
	}
}

// Title and Message let the error template read a pageError.
func (e *pageError) Title() string   { return e.title }
func (e *pageError) Message() string { return e.message }
func (e *pageError) Status() int     { return e.status }

// parseForm reads a posted form, answering a body over maxFormBytes with 413.
func parseForm(r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &pageError{status: http.StatusRequestEntityTooLarge, title: "Too much to send",
				message: "This form sent more than we accept. Go back, shorten what you typed, and try again."}
		}
		return &pageError{status: http.StatusBadRequest, title: "Bad request", message: "The form could not be read. Go back, reload the page, and try again."}
	}
	return nil
}

// userMessage is what to show for an error of billing or accounts: its message when it is
// meant for the customer, or somethingWrong (after logging it).
func (s *Server) userMessage(r *http.Request, err error) (int, string) {
	var we *wire.Error
	if errors.As(err, &we) && wire.HTTPStatus(we.Code) < 500 {
		return wire.HTTPStatus(we.Code), sentence(we.Message)
	}
	s.log.ErrorContext(r.Context(), "request failed", "request_id", r.Header.Get(httpapi.RequestIDHeader), "path", r.URL.Path, "error", err.Error())
	return http.StatusInternalServerError, somethingWrong
}
