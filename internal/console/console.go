// Package console serves keygate's web console on the admin listener: pages
// rendered on the server from templates embedded in the binary, a small
// script and the uPlot chart library beside them, nothing fetched from
// anywhere else. Every page and every form is a call to the admin API made
// in-process with the browser's own session cookie, so the console can do
// exactly what its user could do with the API and nothing more: the route
// table in internal/admin decides every call.
package console

import (
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

//go:embed assets
var assets embed.FS

// Options configures the console.
type Options struct {
	// API is the admin API the console calls, in-process.
	API http.Handler
	// Log receives errors the console could not show a user.
	Log *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Version is shown in the footer.
	Version string
}

// Console is the web console.
type Console struct {
	opts    Options
	api     apiCaller
	pages   map[string]*template.Template
	handler http.Handler
}

// contentSecurityPolicy lets a page load only the console's own script,
// styles and images, and no page frame it or post a form elsewhere.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// New builds the console. It returns an error when an embedded template
// does not parse, which the tests catch.
func New(opts Options) (*Console, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	c := &Console{opts: opts, api: apiCaller{h: opts.API}}
	if err := c.parse(); err != nil {
		return nil, err
	}
	static, err := fs.Sub(assets, "assets/static")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /static/", http.StripPrefix("/static/", staticFiles(static)))
	c.routes(mux)
	// Every request that changes something must come from the console's
	// own pages: CrossOriginProtection refuses a cross-site POST (by
	// Sec-Fetch-Site, else Origin against Host) before any handler runs.
	csrf := http.NewCrossOriginProtection()
	csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "keygate refused a request from another site: change things from the console's own pages", http.StatusForbidden)
	}))
	c.handler = browserHeaders(csrf.Handler(mux))
	return c, nil
}

// Mount returns the admin listener's handler: the admin API under /api/
// and /metrics, the console everywhere else.
func (c *Console) Mount() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") || r.URL.Path == "/metrics" {
			c.opts.API.ServeHTTP(w, r)
			return
		}
		c.handler.ServeHTTP(w, r)
	})
}

// ServeHTTP serves the console's pages, forms and assets.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.handler.ServeHTTP(w, r) }

// browserHeaders sets the headers that keep a page from being framed,
// sniffed, cached or made to run anything but the console's own script.
func browserHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), clipboard-write=(self)")
		if !strings.HasPrefix(r.URL.Path, "/static/") {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// staticFiles serves the embedded assets; they change only with the
// binary, so a browser revalidates them rather than keeping them forever.
func staticFiles(fsys fs.FS) http.Handler {
	files := http.FileServerFS(fsys)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") || r.URL.Path == "" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}

// parse reads every page template with the layout.
func (c *Console) parse() error {
	c.pages = map[string]*template.Template{}
	names, err := fs.Glob(assets, "assets/templates/*.html")
	if err != nil {
		return err
	}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "assets/templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs(c.opts.Now)).ParseFS(assets, "assets/templates/layout.html", n)
		if err != nil {
			return fmt.Errorf("console: template %s: %w", base, err)
		}
		c.pages[base] = t
	}
	return nil
}
