package credbroker_test

// TLS/mTLS and the bearer token against the real broker with ../testdata/tls/broker.toml:
// client certificates from the test CA required, the test client's SPIFFE ID
// (spiffe://credbroker.test/client) may read and write bro credentials under client-suite/,
// bearer tokens are verified against a JWKS — grpc-go's TLS stack against rustls.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	credbroker "credbroker.local/client"
	pb "credbroker.local/client/gen/credbroker/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

var certs = filepath.Join("..", "testdata", "tls")

const broCode = "9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e"

func cert(name string) string {
	path, _ := filepath.Abs(filepath.Join(certs, name))
	return path
}

var mtls = credbroker.TLSConfig{CAFile: cert("ca.pem"), CertFile: cert("client.pem"), KeyFile: cert("client.key")}

// mtlsBroker starts the broker binary with TLS, mTLS, a JWKS and a policy, and stores a BRO
// token for go/a through the admin API (over mTLS).
func mtlsBroker(t *testing.T) string {
	bin, _ := filepath.Abs(binary("CREDBROKER_BIN", "credbroker"))
	// Run from the certificates' directory: broker.toml names its files relative to it.
	cmd := exec.Command(bin, "serve", "--config", "broker.toml")
	cmd.Dir = certs
	broker, err := start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.stop)
	target, err := broker.waitFor(`credbroker listening.*"addr":"([0-9.:]+)"|"addr":"([0-9.:]+)".*credbroker listening`)
	if err != nil {
		t.Fatal(err)
	}
	putBro(t, target)
	t.Cleanup(func() {
		broker.mu.Lock()
		logged := strings.Join(broker.lines, "\n")
		broker.mu.Unlock()
		if strings.Contains(logged, broCode) {
			t.Error("a secret reached the broker's log")
		}
	})
	return target
}

func putBro(t *testing.T, target string) {
	pair, err := tls.LoadX509KeyPair(cert("client.pem"), cert("client.key"))
	if err != nil {
		t.Fatal(err)
	}
	pem, _ := os.ReadFile(cert("ca.pem"))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	creds := credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool})
	conn, err := grpc.Dial(target, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	secret := &pb.PutCredentialRequest_BroToken{BroToken: &pb.BroToken{Username: "u|1", Code: broCode}}
	if _, err := pb.NewCredentialAdminClient(conn).PutCredential(ctx, &pb.PutCredentialRequest{Provider: "bro", Subject: "client-suite/a", Secret: secret}); err != nil {
		t.Fatal(err)
	}
}

func TestMTLSCallerAllowedByPolicyGetsTheHeaderOthersAreDenied(t *testing.T) {
	target := mtlsBroker(t)
	c, err := credbroker.Dial(target, credbroker.WithTimeout(30*time.Second), credbroker.WithTLS(mtls), credbroker.WithMaxAttempts(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a, err := c.Authorization(context.Background(), "bro", "client-suite/a", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := headerMap(a)["authorization"]; !strings.HasPrefix(got, "Basic ") {
		t.Fatalf("header %q", got)
	}
	if _, err := c.Authorization(context.Background(), "bro", "other/a", time.Second); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("outside the policy: %v", err)
	}
}

func TestABearerTokenThatDoesNotVerifyIsUnauthenticatedAndNotEchoed(t *testing.T) {
	target := mtlsBroker(t)
	c, err := credbroker.Dial(target, credbroker.WithTimeout(30*time.Second), credbroker.WithTLS(mtls), credbroker.WithMaxAttempts(1),
		credbroker.WithBearerToken(func(context.Context) (string, error) { return "tok-1-not-a-jwt", nil }))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Authorization(context.Background(), "bro", "client-suite/a", time.Second)
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "bearer token") || strings.Contains(err.Error(), "tok-1") {
		t.Fatalf("want UNAUTHENTICATED naming the bearer token without echoing it, got %v", err)
	}
}

func TestRefusedWithoutTheRightCertificates(t *testing.T) {
	target := mtlsBroker(t)
	for name, config := range map[string]credbroker.TLSConfig{
		"no client certificate": {CAFile: cert("ca.pem")},
		"untrusted CA":          {CAFile: cert("client.pem"), CertFile: cert("client.pem"), KeyFile: cert("client.key")},
	} {
		c, err := credbroker.Dial(target, credbroker.WithTLS(config), credbroker.WithMaxAttempts(1), credbroker.WithTimeout(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Authorization(context.Background(), "bro", "client-suite/a", time.Second); err == nil {
			t.Fatalf("%s: the call succeeded", name)
		}
		c.Close()
	}
}
