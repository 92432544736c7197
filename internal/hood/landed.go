package hood

import (
	"errors"
	"net/http"
)

// MayHaveLanded reports whether a failed request may still have reached
// Hood and been applied. Hood's documentation does not say what a lost
// answer means, so only two answers count as "not applied": a request that
// never left (ErrNotSent), and a single attempt that Hood answered with a
// 4xx status (it refused the request). Everything else — a 5xx, a timeout,
// a reset connection, any error after earlier attempts that may have
// landed — may have been applied: the safe reading, since the caller then
// treats Hood's settings as unknown and pushes again.
func MayHaveLanded(err error) bool {
	if err == nil {
		return true
	}
	if errors.Is(err, ErrNotSent) {
		return false
	}
	var ae *APIError
	if errors.As(err, &ae) && ae.Attempts <= 1 &&
		ae.StatusCode >= http.StatusBadRequest && ae.StatusCode < http.StatusInternalServerError {
		return false
	}
	return true
}
