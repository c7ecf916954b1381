package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// dockerConfig is the image's default config, relative to the repository
// root (runCLI's working directory).
const dockerConfig = "deploy/docker/rules.yaml"

// TestDockerConfigNeedsKey: the image's default config trusts no SalesIQ
// key until one is given. Without one, check and serve fail at the key's
// line with the config's own message, which says how to give it; with the
// PEM in SALESIQ_PUBLIC_KEY, or in a file named by SALESIQ_PUBLIC_KEY_FILE,
// it passes. (The demo key stands in for a real one here; check warns
// about it.) No container engine here: the binary runs the config as the
// image would, and the Dockerfile is checked to ship this file as its
// default config.
func TestDockerConfigNeedsKey(t *testing.T) {
	src, err := os.ReadFile("../" + dockerConfig)
	if err != nil {
		t.Fatal(err)
	}
	line := 0
	for i, l := range strings.Split(string(src), "\n") {
		if strings.Contains(l, "${SALESIQ_PUBLIC_KEY:?") {
			line = i + 1
		}
	}
	how := "the image needs your SalesIQ public key: set SALESIQ_PUBLIC_KEY to its PEM"
	mount := "or mount the PEM file at /run/secrets/salesiq-public.pem and set SALESIQ_PUBLIC_KEY_FILE=/run/secrets/salesiq-public.pem"
	at := dockerConfig + ":" + itoa(line) + ":"
	for _, c := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"unset", nil, "environment variable SALESIQ_PUBLIC_KEY is not set: " + how},
		{"empty", map[string]string{"SALESIQ_PUBLIC_KEY": ""}, "environment variable SALESIQ_PUBLIC_KEY is empty: " + how},
	} {
		code, out, errs := runCLI(t, c.env, "check", "-c", dockerConfig)
		if code != 1 || !strings.Contains(errs, at) || !strings.Contains(errs, c.want) || !strings.Contains(errs, mount) {
			t.Errorf("check, key %s: exit %d, stdout %q, stderr:\n%s\nwant exit 1 and %s … %s … %s", c.name, code, out, errs, at, c.want, mount)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	serve := exec.CommandContext(ctx, binPath, "serve", "-c", dockerConfig)
	serve.Dir = ".."
	serve.Env = []string{"PATH=" + os.Getenv("PATH")}
	outb, err := serve.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(outb), how) || strings.Contains(string(outb), `"listening"`) {
		t.Errorf("serve without a key: %v, output:\n%s\nwant exit 1 and %s…, before listening", err, outb, how)
	}

	demo, err := filepath.Abs("../examples/keys/demo-salesiq-public.pem")
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(demo)
	if err != nil {
		t.Fatal(err)
	}
	for name, env := range map[string]map[string]string{
		"SALESIQ_PUBLIC_KEY":      {"SALESIQ_PUBLIC_KEY": string(pem)},
		"SALESIQ_PUBLIC_KEY_FILE": {"SALESIQ_PUBLIC_KEY_FILE": demo},
	} {
		code, out, errs := runCLI(t, env, "check", "-c", dockerConfig)
		if code != 0 || !strings.Contains(out, "ok: 1 sources, 1 sinks, 1 rules") || !strings.Contains(out, `warning: source "salesiq" trusts the demo SalesIQ key`) {
			t.Errorf("check with the key in %s: exit %d\n%s%s", name, code, out, errs)
		}
	}

	// The image ships this config where HOOKROUTE_CONFIG points, and
	// names its base images in full.
	df, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	dockerfile := string(df)
	for _, want := range []string{"COPY " + dockerConfig + " /etc/hookroute/rules.yaml", "HOOKROUTE_CONFIG=/etc/hookroute/rules.yaml"} {
		if !strings.Contains(dockerfile, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	for _, l := range strings.Split(dockerfile, "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "FROM" {
			if host, _, ok := strings.Cut(f[1], "/"); !ok || !strings.Contains(host, ".") {
				t.Errorf("Dockerfile: %q: base image not fully qualified (registry host first)", l)
			}
		}
		if len(f) >= 2 && f[0] == "COPY" && (strings.Contains(l, "rules.example.yaml") || strings.Contains(l, "examples")) {
			t.Errorf("Dockerfile: %q ships the example config or examples/ (the demo keys)", l)
		}
	}
}
