package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// page is a headless Chromium tab for the browser tests.
type page struct {
	t   *testing.T
	ctx context.Context
}

// openPage starts Debian's chromium (see chromium) at width×height and
// navigates to url; the browser is closed when the test ends.
func openPage(t *testing.T, url string, width, height int) *page {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium(t)), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.WindowSize(width, height), chromedp.Flag("lang", "vi-VN"))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(int64(width), int64(height))); err != nil {
		t.Fatalf("viewport %dx%d: %v", width, height, err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	return &page{t: t, ctx: ctx}
}

// eval runs a JavaScript expression that gives a string.
func (p *page) eval(js string) string {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](js))
	if err != nil {
		p.t.Fatalf("%s: %v", js, err)
	}
	return v
}

// text is the text of the first element matching css, or "(missing)".
func (p *page) text(css string) string {
	p.t.Helper()
	return p.eval(fmt.Sprintf(`(document.querySelector(%q) || {textContent: "(missing)"}).textContent`, css))
}

// waitLoaded waits until the page's data-loaded stamp passes after (the
// dashboard and the ops page stamp <body> each time they have drawn).
func (p *page) waitLoaded(after string) {
	p.t.Helper()
	expr := fmt.Sprintf(`Number(document.body.dataset.loaded || "0") > %s`, after)
	if _, err := chromedp.Run(p.ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		p.t.Fatalf("the page did not load: %v", err)
	}
}

// screenshot saves the whole page as docs/img/<name> (PNG).
func (p *page) screenshot(name string) {
	p.t.Helper()
	png, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100)) // quality 100: PNG
	if err != nil {
		p.t.Fatalf("screenshot: %v", err)
	}
	dir := filepath.Join("..", "..", "docs", "img")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// screenshotOf saves the element matching css as docs/img/<name> (PNG).
func (p *page) screenshotOf(css, name string) {
	p.t.Helper()
	png, err := chromedp.Run(p.ctx, chromedp.Screenshot(css, chromedp.NodeVisible))
	if err != nil {
		p.t.Fatalf("screenshot of %s: %v", css, err)
	}
	if err := os.WriteFile(filepath.Join("..", "..", "docs", "img", name), png, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// clickAt clicks the page at x, y (CSS pixels), as a mouse does.
func (p *page) clickAt(x, y float64) {
	p.t.Helper()
	if _, err := chromedp.Run(p.ctx, chromedp.MouseClickXY(x, y)); err != nil {
		p.t.Fatalf("click at %g, %g: %v", x, y, err)
	}
}

// waitFor polls a JavaScript expression until it is true.
func (p *page) waitFor(what, js string) {
	p.t.Helper()
	if _, err := chromedp.Run(p.ctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		p.t.Fatalf("%s: %v", what, err)
	}
}
