package testkit

import (
	"bufio"
	"net"
	"net/http"
)

// StatusWriter is an http.ResponseWriter that remembers the status written
// through it (200 when the handler writes a body first); 0 means nothing
// was written. It passes Flush and Hijack on to the writer it wraps, so that
// a proxy or a fault injector behind it can still take the connection.
//
// (The admin API of the daemon has its own, smaller one: production code
// does not import this package.)
type StatusWriter struct {
	http.ResponseWriter
	Status int
}

// WriteHeader implements http.ResponseWriter.
func (w *StatusWriter) WriteHeader(code int) {
	if w.Status == 0 {
		w.Status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write implements http.ResponseWriter.
func (w *StatusWriter) Write(b []byte) (int, error) {
	if w.Status == 0 {
		w.Status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the wrapped writer.
func (w *StatusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush implements http.Flusher (a no-op where the wrapped writer cannot).
func (w *StatusWriter) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

// Hijack implements http.Hijacker, for code that asserts it rather than
// use http.ResponseController.
func (w *StatusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(w.ResponseWriter).Hijack()
}
