package cli

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// chromium finds a headless browser, or skips: only when CI is unset, and saying why.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "" {
		t.Skip("chromium is not installed (apt-get install chromium; scripts/test.sh does under CI=true): the HTML picture is not checked in a browser")
	}
	t.Fatal("CI is set and chromium is not installed: scripts/test.sh installs it")
	return ""
}

// runChromium runs a fresh headless browser on file with extra flags and returns stdout.
func runChromium(t *testing.T, bin, file string, extra ...string) []byte {
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--user-data-dir=" + t.TempDir()}, extra...)
	cmd := exec.CommandContext(ctx, bin, append(args, "file://"+file)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	return stdout.Bytes()
}

// TestCheckPictureShowsTheCutFlowsRedInABrowser loads check -o html of the example shop in
// a real headless Chromium: the page as the browser built it names the rules, and its
// screenshot shows the cut flows in red. CHECK_PICTURE_SCREENSHOT=path keeps the screenshot.
func TestCheckPictureShowsTheCutFlowsRedInABrowser(t *testing.T) {
	bin := chromium(t)
	var out, errw bytes.Buffer
	code := Check(&out, &errw, CheckOptions{Inputs: Inputs{Cluster: "../examples/cluster.yaml", Flows: "../examples/flows.jsonl"},
		Policies: []string{"../examples/proposed/shop-default-deny.yaml"}, Output: OutputHTML, Now: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)})
	if code != ExitCut {
		t.Fatalf("exit %d: %s", code, errw.String())
	}
	page := filepath.Join(t.TempDir(), "shop.html")
	if err := os.WriteFile(page, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	dom := string(runChromium(t, bin, page, "--dump-dom"))
	for _, want := range []string{
		"create shop/default-deny would cut 10 of 19 observed flows",
		"cut: egress isolated by shop/default-deny and no rule allows it",
		"was allowed by: shop/allow-same-namespace ingress[0]",
		"Suggested fix",
		"add egress to shop/redis (app=redis) on TCP/redis for shop/cart",
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the page in the browser lacks %q", want)
		}
	}
	if n := strings.Count(dom, `class="flow cut"`); n != 10 {
		t.Errorf("%d cut edges in the page, want 10", n)
	}

	shot := filepath.Join(t.TempDir(), "shop.png")
	runChromium(t, bin, page, "--window-size=1600,1000", "--hide-scrollbars", "--screenshot="+shot)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if red := redPixels(img); red < 2000 {
		t.Errorf("the screenshot shows %d red pixels: the cut flows are not drawn red", red)
	}
	if keep := os.Getenv("CHECK_PICTURE_SCREENSHOT"); keep != "" {
		data, _ := os.ReadFile(shot)
		if err := os.WriteFile(keep, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// redPixels counts the pixels near the cut colour, #d62728.
func redPixels(img image.Image) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r>>8 > 180 && g>>8 < 90 && bl>>8 < 90 {
				n++
			}
		}
	}
	return n
}
