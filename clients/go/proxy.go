package credbroker

import (
	"context"
	"time"

	pb "credbroker.local/client/gen/credbroker/v1"
	"google.golang.org/protobuf/types/known/durationpb"
)

// ProxyRequest is an upstream call for the broker to make; Path is relative to the
// provider's API base.
type ProxyRequest struct {
	Provider, Subject, Method, Path string
	Headers                         []Header
	Body                            []byte
	Timeout                         time.Duration // zero: the broker's default
}

// ProxyResponse is the upstream's answer, whatever its status.
type ProxyResponse struct {
	Status  int
	Headers []Header
	Body    []byte
}

// ProxyCall has the broker make the upstream call with the credential attached. Never
// retried: a POST must not be sent twice.
func (c *Client) ProxyCall(ctx context.Context, r ProxyRequest) (*ProxyResponse, error) {
	request := &pb.ProxyCallRequest{Provider: r.Provider, Subject: r.Subject, Method: r.Method, Path: r.Path, Body: r.Body}
	for _, h := range r.Headers {
		request.Headers = append(request.Headers, &pb.Header{Name: h.Name, Value: h.Value})
	}
	if r.Timeout > 0 {
		request.Timeout = durationpb.New(r.Timeout)
		if _, ok := ctx.Deadline(); !ok {
			// The broker answers DEADLINE_EXCEEDED itself first.
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, r.Timeout+time.Second)
			defer cancel()
		}
	}
	ctx, cancel := c.deadline(ctx)
	defer cancel()
	response, err := c.broker.ProxyCall(ctx, request)
	if err != nil {
		return nil, fromRPC(err)
	}
	out := &ProxyResponse{Status: int(response.Status), Body: response.Body}
	for _, h := range response.Headers {
		out.Headers = append(out.Headers, Header{h.Name, h.Value})
	}
	return out, nil
}
