package credbroker

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Retried on UNAVAILABLE. Not ProxyCall: its UNAVAILABLE can mean the upstream connection was
// lost after the request was sent, and a POST must not be sent twice. Not PutCredential: an
// authorization code is single-use.
var retriedMethods = map[string]bool{
	"/credbroker.v1.CredentialBroker/GetAuthorization":   true,
	"/credbroker.v1.CredentialBroker/ReportRejected":     true,
	"/credbroker.v1.CredentialAdmin/GetCredentialStatus": true,
	"/credbroker.v1.CredentialAdmin/ListCredentials":     true,
	"/credbroker.v1.CredentialAdmin/DeleteCredential":    true,
}

const (
	initialBackoff = 200 * time.Millisecond
	maxBackoff     = 2 * time.Second
)

// serviceConfig is the standard gRPC service config: retry UNAVAILABLE with back-off.
func serviceConfig(maxAttempts int) string {
	if maxAttempts <= 1 {
		return `{"methodConfig":[]}`
	}
	var names []map[string]string
	for full := range retriedMethods {
		parts := strings.Split(strings.TrimPrefix(full, "/"), "/")
		names = append(names, map[string]string{"service": parts[0], "method": parts[1]})
	}
	policy := map[string]interface{}{
		"maxAttempts": maxAttempts, "initialBackoff": "0.2s", "maxBackoff": "2s",
		"backoffMultiplier": 2, "retryableStatusCodes": []string{"UNAVAILABLE"},
	}
	config, _ := json.Marshal(map[string]interface{}{
		"methodConfig": []interface{}{map[string]interface{}{"name": names, "retryPolicy": policy}},
	})
	return string(config)
}

// builtInRetries: grpc-go applies the service config's retry policy from 1.40 on; before that
// (Debian bookworm ships 1.33) only with GRPC_GO_RETRY=on.
func builtInRetries() bool {
	if strings.EqualFold(os.Getenv("GRPC_GO_RETRY"), "on") {
		return true
	}
	parts := strings.Split(grpc.Version, ".")
	minor, _ := strconv.Atoi(parts[1])
	return parts[0] != "1" || minor >= 40
}

// retryUnavailable applies the same policy as an interceptor, where grpc-go would ignore it.
func retryUnavailable(maxAttempts int) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply interface{}, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		backoff := initialBackoff
		for attempt := 1; attempt < maxAttempts && retriedMethods[method] && status.Code(err) == codes.Unavailable; attempt++ {
			select {
			case <-ctx.Done():
				return err
			case <-time.After(backoff):
			}
			if backoff *= 2; backoff > maxBackoff {
				backoff = maxBackoff
			}
			err = invoker(ctx, method, req, reply, cc, opts...)
		}
		return err
	}
}
