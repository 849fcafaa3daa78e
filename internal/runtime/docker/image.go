package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"

	"github.com/pocketmolt/pocketmolt/internal/runtime"
)

// EnsureImage makes ref present. A present image is left as it is; otherwise it is pulled,
// each progress message going to progress (which may be nil) as one line. A malformed
// reference (a bad tag or digest) fails at once, without asking the Engine; it and any
// failed pull are runtime.ErrImageUnavailable, wrapped with the Engine's reason. An Engine
// that cannot be reached, or ctx ending, is not.
func (d *Docker) EnsureImage(ctx context.Context, ref string, progress func(string)) error {
	if _, err := reference.ParseNormalizedNamed(ref); err != nil {
		return fmt.Errorf("ensure image %q: %w: %w", ref, runtime.ErrImageUnavailable, err)
	}
	_, err := d.c.ImageInspect(ctx, ref)
	if err == nil {
		return nil
	}
	if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("ensure image %s: %w", ref, err)
	}
	if err := d.pull(ctx, ref, progress); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("pull image %s: %w", ref, ctx.Err())
		}
		return fmt.Errorf("pull image %s: %w: %w", ref, runtime.ErrImageUnavailable, err)
	}
	if _, err := d.c.ImageInspect(ctx, ref); err != nil {
		return fmt.Errorf("pull image %s: %w: not present after pull: %w", ref, runtime.ErrImageUnavailable, err)
	}
	return nil
}

// pull pulls ref, reporting the Engine's progress messages.
func (d *Docker) pull(ctx context.Context, ref string, progress func(string)) error {
	resp, err := d.c.ImagePull(ctx, ref, client.ImagePullOptions{})
	if err != nil {
		return err
	}
	defer resp.Close()
	for m, err := range resp.JSONMessages(ctx) {
		if err != nil {
			return err
		}
		if m.Error != nil {
			return errors.New(m.Error.Message)
		}
		if line := progressLine(m); line != "" && progress != nil {
			progress(line)
		}
	}
	return nil
}

// progressLine renders one progress message as the docker CLI would without a terminal.
func progressLine(m jsonstream.Message) string {
	var b strings.Builder
	if m.ID != "" {
		b.WriteString(m.ID + ": ")
	}
	b.WriteString(m.Status)
	if p := m.Progress; p != nil && p.Total > 0 {
		fmt.Fprintf(&b, " %d/%d", p.Current, p.Total)
	}
	if s := strings.TrimRight(m.Stream, "\n"); s != "" {
		b.WriteString(s)
	}
	return strings.TrimSpace(b.String())
}

// BuildImage builds files (a Dockerfile at the root plus whatever it copies) into an image
// tagged tag, with the Engine's classic builder and no base image pulled unless the
// Dockerfile names one. Files go into the build context with mode 0644, except those that
// start with an ELF header or "#!", which get 0755. The build's output is read to the end;
// a failed step is returned as an error with the build's last lines.
func (d *Docker) BuildImage(ctx context.Context, tag string, files map[string][]byte) error {
	if _, err := reference.ParseNormalizedNamed(tag); err != nil {
		return fmt.Errorf("build image %q: %w", tag, err)
	}
	if _, ok := files["Dockerfile"]; !ok {
		return fmt.Errorf("build image %s: no Dockerfile", tag)
	}
	buildCtx, err := tarFiles(files)
	if err != nil {
		return fmt.Errorf("build image %s: %w", tag, err)
	}
	res, err := d.c.ImageBuild(ctx, buildCtx, client.ImageBuildOptions{
		Tags:        []string{tag},
		Remove:      true,
		ForceRemove: true,
		Version:     build.BuilderV1,
	})
	if err != nil {
		return fmt.Errorf("build image %s: %w", tag, err)
	}
	defer res.Body.Close()

	var last []string // the build's last lines, for the error
	dec := json.NewDecoder(res.Body)
	for {
		var m jsonstream.Message
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("build image %s: read output: %w", tag, err)
		}
		if m.Error != nil {
			return fmt.Errorf("build image %s: %s (after: %s)", tag, m.Error.Message, strings.Join(last, " | "))
		}
		if line := progressLine(m); line != "" {
			last = append(last, line)
			if len(last) > 5 {
				last = last[1:]
			}
		}
	}
}

// tarFiles is files as an in-memory tar archive, in name order.
func tarFiles(files map[string][]byte) (io.Reader, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	mtime := time.Unix(0, 0)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		clean := path.Clean(name)
		if clean == "." || path.IsAbs(clean) || strings.HasPrefix(clean, "../") || clean == ".." {
			return nil, fmt.Errorf("file name %q is outside the build context", name)
		}
		var parents []string // missing parent directories, deepest first
		for dir := path.Dir(clean); dir != "." && !dirs[dir]; dir = path.Dir(dir) {
			dirs[dir] = true
			parents = append(parents, dir)
		}
		for _, dir := range slices.Backward(parents) {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755, ModTime: mtime}); err != nil {
				return nil, err
			}
		}
		data := files[name]
		mode := int64(0o644)
		if bytes.HasPrefix(data, []byte("\x7fELF")) || bytes.HasPrefix(data, []byte("#!")) {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: clean, Mode: mode, Size: int64(len(data)), ModTime: mtime}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return &buf, nil
}
