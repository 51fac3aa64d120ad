// Package credbroker is the Go client of credbroker: cached authorization headers, 401
// reporting, ProxyCall, and an http.RoundTripper that does it all for an HTTP client.
//
// Generate the gRPC code first (once, and after a proto change): ./prepare.sh
package credbroker

//go:generate ./prepare.sh

import (
	"context"
	"sync"
	"time"

	pb "credbroker.local/client/gen/credbroker/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Authorization: headers to attach upstream. Its String method never shows their values.
type Authorization struct {
	Headers     []Header
	ExpiresAt   time.Time // zero when the credential does not expire
	Fingerprint string
}

// Header is one header name and value.
type Header struct{ Name, Value string }

func (a *Authorization) String() string {
	return "Authorization{fingerprint: " + a.Fingerprint + ", headers: [redacted]}"
}

// validFor: how long the headers stay valid after now.
func (a *Authorization) validFor(now time.Time) time.Duration {
	if a.ExpiresAt.IsZero() {
		return time.Duration(1<<63 - 1)
	}
	return a.ExpiresAt.Sub(now)
}

type cacheKey struct{ provider, subject string }

// Client talks to one broker. Safe for concurrent use.
type Client struct {
	conn    *grpc.ClientConn
	broker  pb.CredentialBrokerClient
	admin   pb.CredentialAdminClient
	opts    options
	mu      sync.Mutex
	entries map[cacheKey]*Authorization
}

// Dial connects to the broker at target (host:port). The connection is made lazily.
func Dial(target string, opt ...Option) (*Client, error) {
	o := defaults()
	for _, apply := range opt {
		apply(&o)
	}
	creds, err := o.transportCredentials()
	if err != nil {
		return nil, err
	}
	interceptors := append([]grpc.UnaryClientInterceptor{o.withBearer}, o.interceptors...)
	if !builtInRetries() && o.maxAttempts > 1 {
		interceptors = append(interceptors, retryUnavailable(o.maxAttempts))
	}
	conn, err := grpc.Dial(target, creds,
		grpc.WithDefaultServiceConfig(serviceConfig(o.maxAttempts)),
		grpc.WithChainUnaryInterceptor(interceptors...),
		grpc.WithChainStreamInterceptor(o.withBearerStream))
	if err != nil {
		return nil, err
	}
	return &Client{conn: conn, broker: pb.NewCredentialBrokerClient(conn), admin: pb.NewCredentialAdminClient(conn),
		opts: o, entries: map[cacheKey]*Authorization{}}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Admin is the CredentialAdmin API on the same connection (deadlines are the caller's).
func (c *Client) Admin() pb.CredentialAdminClient { return c.admin }

// Authorization returns headers valid for at least minValidity (and the margin): cached, or fetched.
func (c *Client) Authorization(ctx context.Context, provider, subject string, minValidity time.Duration) (*Authorization, error) {
	key := cacheKey{provider, subject}
	need := minValidity
	if c.opts.margin > need {
		need = c.opts.margin
	}
	c.mu.Lock()
	cached := c.entries[key]
	c.mu.Unlock()
	if cached != nil && cached.validFor(c.opts.clock()) > need {
		return cached, nil
	}
	fresh, err := c.fetch(ctx, provider, subject, minValidity)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.entries[key] = fresh
	c.mu.Unlock()
	return fresh, nil
}

// ReportRejected tells the broker the header with this fingerprint got a 401 upstream (it
// renews it if it is still current) and drops it from the cache.
func (c *Client) ReportRejected(ctx context.Context, provider, subject, fingerprint string) error {
	key := cacheKey{provider, subject}
	c.mu.Lock()
	if cached := c.entries[key]; cached != nil && cached.Fingerprint == fingerprint {
		delete(c.entries, key)
	}
	c.mu.Unlock()
	ctx, cancel := c.deadline(ctx)
	defer cancel()
	_, err := c.broker.ReportRejected(ctx, &pb.ReportRejectedRequest{Provider: provider, Subject: subject, TokenFingerprint: fingerprint})
	return fromRPC(err)
}

func (c *Client) fetch(ctx context.Context, provider, subject string, minValidity time.Duration) (*Authorization, error) {
	ctx, cancel := c.deadline(ctx)
	defer cancel()
	response, err := c.broker.GetAuthorization(ctx, &pb.GetAuthorizationRequest{
		Provider: provider, Subject: subject, MinValidity: durationpb.New(minValidity)})
	if err != nil {
		return nil, fromRPC(err)
	}
	a := &Authorization{Fingerprint: response.TokenFingerprint}
	if response.ExpiresAt != nil {
		a.ExpiresAt = response.ExpiresAt.AsTime()
	}
	for _, h := range response.Headers {
		a.Headers = append(a.Headers, Header{h.Name, h.Value})
	}
	return a, nil
}

// deadline gives ctx the client's timeout unless it already has a deadline.
func (c *Client) deadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.opts.timeout)
}

func (o *options) bearerContext(ctx context.Context) (context.Context, error) {
	if o.bearer == nil {
		return ctx, nil
	}
	token, err := o.bearer(ctx)
	if err != nil {
		return nil, err
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token), nil
}

func (o *options) withBearer(ctx context.Context, method string, req, reply interface{}, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	ctx, err := o.bearerContext(ctx)
	if err != nil {
		return err
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

func (o *options) withBearerStream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	ctx, err := o.bearerContext(ctx)
	if err != nil {
		return nil, err
	}
	return streamer(ctx, desc, cc, method, opts...)
}
