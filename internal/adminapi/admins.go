package adminapi

import (
	"net/http"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/httpapi"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

func (a *API) createAdmin(w http.ResponseWriter, r *http.Request) error {
	var req wire.AdminRequest
	if err := httpapi.DecodeStrict(w, r, 16<<10, &req); err != nil {
		return err
	}
	b, err := a.Admins.Create(r.Context(), actor(r), req.Name, time.Duration(req.TTL))
	if err != nil {
		return err
	}
	// The key is in this answer and nowhere else: no cache may keep it.
	w.Header().Set("Cache-Control", "no-store")
	wire.WriteJSON(w, http.StatusCreated, b)
	return nil
}

func (a *API) listAdmins(w http.ResponseWriter, r *http.Request) error {
	as, err := a.Admins.List(r.Context())
	if err != nil {
		return err
	}
	wire.WriteJSON(w, http.StatusOK, as)
	return nil
}

func (a *API) revokeAdmin(w http.ResponseWriter, r *http.Request) error {
	rev, err := a.Admins.Revoke(r.Context(), actor(r), r.PathValue("name"))
	if err != nil {
		return err
	}
	wire.WriteJSON(w, http.StatusOK, rev)
	return nil
}
