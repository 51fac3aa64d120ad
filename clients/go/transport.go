package credbroker

import (
	"io"
	"net/http"
	"time"
)

// Transport is an http.RoundTripper that attaches the broker's headers for one credential.
// On a 401 it reports the header, fetches a fresh one and sends the request once more — only
// when the broker handed out a different header (a static credential would only get the same
// 401 again) and the body can be replayed (no body, or http.Request.GetBody is set, as
// http.NewRequest does for bytes, strings and buffers).
type Transport struct {
	Client      *Client
	Provider    string
	Subject     string
	MinValidity time.Duration     // default 30 s
	Base        http.RoundTripper // default http.DefaultTransport
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	used, err := t.Client.Authorization(req.Context(), t.Provider, t.Subject, t.minValidity())
	if err != nil {
		return nil, err
	}
	response, err := t.base().RoundTrip(with(req, used, req.Body))
	if err != nil || response.StatusCode != http.StatusUnauthorized {
		return response, err
	}
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	if !replayable {
		return response, nil
	}
	if err := t.Client.ReportRejected(req.Context(), t.Provider, t.Subject, used.Fingerprint); err != nil {
		return response, nil // the 401 is the caller's answer; the report is best effort
	}
	fresh, err := t.Client.Authorization(req.Context(), t.Provider, t.Subject, t.minValidity())
	if err != nil || fresh.Fingerprint == used.Fingerprint {
		return response, nil
	}
	body := req.Body
	if req.GetBody != nil {
		if body, err = req.GetBody(); err != nil {
			return response, nil
		}
	}
	io.Copy(io.Discard, response.Body)
	response.Body.Close()
	return t.base().RoundTrip(with(req, fresh, body))
}

// with clones req (a RoundTripper must not change its argument) with a's headers and body.
func with(req *http.Request, a *Authorization, body io.ReadCloser) *http.Request {
	clone := req.Clone(req.Context())
	clone.Body = body
	for _, h := range a.Headers {
		clone.Header.Set(h.Name, h.Value)
	}
	return clone
}

func (t *Transport) minValidity() time.Duration {
	if t.MinValidity > 0 {
		return t.MinValidity
	}
	return 30 * time.Second
}

func (t *Transport) base() http.RoundTripper {
	if t.Base != nil {
		return t.Base
	}
	return http.DefaultTransport
}
