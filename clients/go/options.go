package credbroker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// TLSConfig: TLS to the broker; with CertFile and KeyFile, mTLS (the client certificate
// identifies the caller). Paths to PEM files.
type TLSConfig struct {
	CAFile     string
	CertFile   string
	KeyFile    string
	ServerName string // the name to verify when it differs from the target's host
}

type options struct {
	tls          *TLSConfig
	bearer       func(context.Context) (string, error)
	timeout      time.Duration
	maxAttempts  int
	margin       time.Duration
	interceptors []grpc.UnaryClientInterceptor
	clock        func() time.Time
}

// Option configures Dial.
type Option func(*options)

// WithTLS connects with TLS (mTLS when a client certificate is given).
func WithTLS(c TLSConfig) Option { return func(o *options) { o.tls = &c } }

// WithBearerToken sends `authorization: Bearer <token()>` on every call.
func WithBearerToken(token func(context.Context) (string, error)) Option {
	return func(o *options) { o.bearer = token }
}

// WithTimeout sets the deadline of calls whose context has none (default 5 s).
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithMaxAttempts sets the attempts on UNAVAILABLE (default 4; 1 turns retries off).
func WithMaxAttempts(n int) Option { return func(o *options) { o.maxAttempts = n } }

// WithMargin renews a cached header this long before it expires (at least minValidity; default 30 s).
func WithMargin(d time.Duration) Option { return func(o *options) { o.margin = d } }

// WithUnaryInterceptor adds a client interceptor (metrics, tracing).
func WithUnaryInterceptor(i grpc.UnaryClientInterceptor) Option {
	return func(o *options) { o.interceptors = append(o.interceptors, i) }
}

// WithClock replaces time.Now, for tests.
func WithClock(now func() time.Time) Option { return func(o *options) { o.clock = now } }

func defaults() options {
	return options{timeout: 5 * time.Second, maxAttempts: 4, margin: 30 * time.Second, clock: time.Now}
}

func (o *options) transportCredentials() (grpc.DialOption, error) {
	if o.tls == nil {
		return grpc.WithInsecure(), nil
	}
	config := &tls.Config{ServerName: o.tls.ServerName, MinVersion: tls.VersionTLS12}
	if o.tls.CAFile != "" {
		pem, err := os.ReadFile(o.tls.CAFile)
		if err != nil {
			return nil, fmt.Errorf("credbroker: reading the CA file: %w", err)
		}
		config.RootCAs = x509.NewCertPool()
		if !config.RootCAs.AppendCertsFromPEM(pem) {
			return nil, errors.New("credbroker: the CA file holds no PEM certificate")
		}
	}
	if (o.tls.CertFile == "") != (o.tls.KeyFile == "") {
		return nil, errors.New("credbroker: mTLS needs both CertFile and KeyFile")
	}
	if o.tls.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(o.tls.CertFile, o.tls.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("credbroker: loading the client certificate: %w", err)
		}
		config.Certificates = []tls.Certificate{pair}
	}
	return grpc.WithTransportCredentials(credentials.NewTLS(config)), nil
}
