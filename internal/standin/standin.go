// Package standin builds the stand-in OpenClaw gateway image (examples/standin-gateway) from
// source on this machine: a static binary in an image with no base, so nothing is pulled.
package standin

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"

	"github.com/pocketmolt/pocketmolt/internal/runtime/docker"
)

// Image is the stand-in's default tag.
const Image = "pocketmolt/standin-gateway:dev"

// Package is the stand-in's Go package.
const Package = "github.com/pocketmolt/pocketmolt/examples/standin-gateway"

// HostilePackage is the program the security tests run inside a bot's container.
const HostilePackage = "github.com/pocketmolt/pocketmolt/internal/hostile"

// Build compiles the stand-in with the go command (run from inside this module) and builds
// the image tag from it and its Dockerfile. Each of extra is another Go main package, built
// static and copied into the image as /<last element of its path> (tests add
// HostilePackage).
func Build(ctx context.Context, d *docker.Docker, tag string, extra ...string) error {
	dir, err := goCmd(ctx, "", "list", "-f", "{{.Dir}}", Package)
	if err != nil {
		return fmt.Errorf("find the stand-in's source (run this inside the pocketmolt module): %w", err)
	}
	dockerfile, err := os.ReadFile(filepath.Join(dir, "Dockerfile"))
	if err != nil {
		return fmt.Errorf("stand-in Dockerfile: %w", err)
	}
	tmp, err := os.MkdirTemp("", "standin-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	files := map[string][]byte{}
	for _, pkg := range append([]string{Package}, extra...) {
		name := path.Base(pkg)
		if pkg == Package {
			name = "standin-gateway"
		} else {
			dockerfile = fmt.Appendf(dockerfile, "COPY %s /%s\n", name, name)
		}
		bin := filepath.Join(tmp, name)
		if _, err := goCmd(ctx, "CGO_ENABLED=0", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, pkg); err != nil {
			return fmt.Errorf("build %s: %w", pkg, err)
		}
		if files[name], err = os.ReadFile(bin); err != nil {
			return err
		}
	}
	files["Dockerfile"] = dockerfile
	if err := d.BuildImage(ctx, tag, files); err != nil {
		return fmt.Errorf("build image %s: %w", tag, err)
	}
	return nil
}

func goCmd(ctx context.Context, env string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Env = os.Environ()
	if env != "" {
		cmd.Env = append(cmd.Env, env)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go %s: %w: %s", args[0], err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}
