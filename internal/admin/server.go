package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ocamba-rotator/rotator/internal/secret"
)

// Defaults of Options.
const (
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 10 * time.Second
	DefaultWriteTimeout      = 10 * time.Minute // a forced pass answers only when it is done
	DefaultIdleTimeout       = 60 * time.Second
	DefaultMaxBodyBytes      = 64 << 10
)

// maxHeaderBytes bounds a request's header; the admin API needs little.
const maxHeaderBytes = 64 << 10

// Options configures a Server. Zero values take the defaults named in each
// field's comment; negative values are errors.
type Options struct {
	Listen            string              // host:port, required (the configuration defaults it)
	Token             secret.Value        // bearer token for /v1/*; zero: /v1/* answers 403
	Service           Service             // required
	Gatherer          prometheus.Gatherer // required: what /metrics serves
	Logger            *slog.Logger        // optional; default discards
	ReadHeaderTimeout time.Duration       // default 5s
	ReadTimeout       time.Duration       // default 10s
	WriteTimeout      time.Duration       // default 10m; a pass's answer gets it again once the pass is done
	IdleTimeout       time.Duration       // default 60s
	MaxBodyBytes      int64               // largest request body read; default 64 KiB
}

// Server is the admin HTTP server: /healthz, /readyz, /metrics and the
// bearer-protected /v1 API. Build one with NewServer, then Start it and
// Shutdown it; Handler serves the same routes without a listener.
type Server struct {
	listen  string
	svc     Service
	log     *slog.Logger
	maxBody int64
	token   tokenStore
	handler http.Handler
	srv     *http.Server

	// writeTimeout is the time an answer has to be written; a pass's
	// answer gets it again from the end of the pass (extendWrite).
	writeTimeout time.Duration

	// base is the parent of every forced pass's context: a pass outlives a
	// client that goes away, but not a Shutdown whose deadline expired.
	base     context.Context
	stopBase context.CancelFunc

	mu      sync.Mutex
	ln      net.Listener  // set by Start
	done    chan struct{} // closed when Serve has returned
	started bool
	closed  bool
}

// NewServer checks opts, applies the defaults and returns a server that is
// not yet listening.
func NewServer(opts Options) (*Server, error) {
	if opts.Service == nil {
		return nil, errors.New("admin: new server: Options.Service is required")
	}
	if opts.Gatherer == nil {
		return nil, errors.New("admin: new server: Options.Gatherer is required")
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"ReadHeaderTimeout", &opts.ReadHeaderTimeout, DefaultReadHeaderTimeout},
		{"ReadTimeout", &opts.ReadTimeout, DefaultReadTimeout},
		{"WriteTimeout", &opts.WriteTimeout, DefaultWriteTimeout},
		{"IdleTimeout", &opts.IdleTimeout, DefaultIdleTimeout},
	} {
		switch {
		case *d.v < 0:
			return nil, fmt.Errorf("admin: new server: Options.%s is negative (%s)", d.name, *d.v)
		case *d.v == 0:
			*d.v = d.def
		}
	}
	switch {
	case opts.MaxBodyBytes < 0:
		return nil, fmt.Errorf("admin: new server: Options.MaxBodyBytes is negative (%d)", opts.MaxBodyBytes)
	case opts.MaxBodyBytes == 0:
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.Listen == "" {
		return nil, errors.New("admin: new server: Options.Listen is required (config.DefaultAdminListen is the configuration's default)")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}

	s := &Server{
		listen:  opts.Listen,
		svc:     opts.Service,
		log:     opts.Logger,
		maxBody: opts.MaxBodyBytes,

		writeTimeout: opts.WriteTimeout,
	}
	s.base, s.stopBase = context.WithCancel(context.Background())
	s.token.set(opts.Token)
	s.handler = s.routes(opts.Gatherer)
	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: opts.ReadHeaderTimeout,
		ReadTimeout:       opts.ReadTimeout,
		WriteTimeout:      opts.WriteTimeout,
		IdleTimeout:       opts.IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// routes builds the handler: every path under /v1 goes through the bearer
// check first (before any 404 or 405), then the /v1 mux; the rest is public.
func (s *Server) routes(g prometheus.Gatherer) http.Handler {
	public := http.NewServeMux()
	public.HandleFunc("GET /healthz", s.handleHealthz)
	public.HandleFunc("GET /readyz", s.handleReadyz)
	public.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:      promLogger{s.log},
		ErrorHandling: promhttp.ContinueOnError,
	}))

	v1 := http.NewServeMux()
	v1.HandleFunc("POST /v1/rotate", s.handleRotate)
	v1.HandleFunc("POST /v1/rotate/{name}", s.handleRotate)
	v1.HandleFunc("GET /v1/status", s.handleStatus)
	v1.HandleFunc("GET /v1/plan", s.handlePlan)
	v1.HandleFunc("POST /v1/rotations/{name}", s.handleRotation)
	v1.HandleFunc("GET /v1/rotations", s.handleRotations)
	api := s.logRequests(s.requireToken(jsonMux(v1)))

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1" || strings.HasPrefix(r.URL.Path, "/v1/") {
			api.ServeHTTP(w, r)
			return
		}
		public.ServeHTTP(w, r)
	})
}

// Start listens on Options.Listen, so that Addr is known when it returns,
// and serves in a goroutine until Shutdown.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return errors.New("admin: start: server is shut down")
	case s.started:
		return errors.New("admin: start: already started")
	}
	ln, err := net.Listen("tcp", s.listen)
	if err != nil {
		return fmt.Errorf("admin: listen on %s: %w", s.listen, err)
	}
	s.ln, s.done, s.started = ln, make(chan struct{}), true
	s.log.Info("admin server listening", "admin_listen", ln.Addr().String())
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("admin server stopped", "error", err.Error())
		}
	}()
	return nil
}

// Addr is the bound host:port once Start has returned, else "".
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Handler serves the server's routes; it is what Start serves.
func (s *Server) Handler() http.Handler { return s.handler }

// SetToken replaces the bearer token of /v1/* (after a reload). It is safe
// to call while requests are being served; a zero token makes /v1/* answer
// 403.
func (s *Server) SetToken(t secret.Value) { s.token.set(t) }

// Shutdown stops listening and waits for the requests in progress (a forced
// pass included) until ctx is done; then it closes every connection and
// cancels the passes still running, and returns ctx's error. It is safe to
// call more than once, and before Start.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	started, done := s.started, s.done
	s.mu.Unlock()
	if !started {
		s.stopBase()
		return nil
	}
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.stopBase()
		if cerr := s.srv.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		err = fmt.Errorf("admin: shutdown: %w", err)
	}
	s.stopBase()
	<-done // Serve returns as soon as Shutdown or Close begins
	s.log.Info("admin server stopped")
	return err
}

// promLogger sends promhttp's errors to slog.
type promLogger struct{ log *slog.Logger }

// Println implements promhttp.Logger.
func (l promLogger) Println(v ...any) {
	l.log.Error("metrics scrape", "error", strings.TrimSuffix(fmt.Sprintln(v...), "\n"))
}
