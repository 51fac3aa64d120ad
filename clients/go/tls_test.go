package credbroker_test

// TLS/mTLS and the bearer token against a stand-in TLS server (grpc-go's own, in-process).
// credbroker's server-side TLS is built separately ([server.tls]); this checks the client's
// side: it trusts only the given CA, presents its certificate, and sends the bearer token.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	credbroker "credbroker.local/client"
	pb "credbroker.local/client/gen/credbroker/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
)

var certs = filepath.Join("..", "testdata", "tls")

type echo struct {
	pb.UnimplementedCredentialBrokerServer
}

// GetAuthorization answers with the authorization metadata it saw.
func (echo) GetAuthorization(ctx context.Context, _ *pb.GetAuthorizationRequest) (*pb.GetAuthorizationResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	seen := ""
	if values := md.Get("authorization"); len(values) > 0 {
		seen = values[0]
	}
	return &pb.GetAuthorizationResponse{Headers: []*pb.Header{{Name: "seen-authorization", Value: seen}}, TokenFingerprint: "f"}, nil
}

func mtlsServer(t *testing.T) string {
	pair, err := tls.LoadX509KeyPair(filepath.Join(certs, "server.pem"), filepath.Join(certs, "server.key"))
	if err != nil {
		t.Fatal(err)
	}
	pem, _ := os.ReadFile(filepath.Join(certs, "ca.pem"))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	config := &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	server := grpc.NewServer(grpc.Creds(credentials.NewTLS(config)))
	pb.RegisterCredentialBrokerServer(server, echo{})
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go server.Serve(listener)
	t.Cleanup(server.Stop)
	return listener.Addr().String()
}

func TestMTLSWithABearerToken(t *testing.T) {
	target := mtlsServer(t)
	c, err := credbroker.Dial(target, credbroker.WithTimeout(30*time.Second),
		credbroker.WithTLS(credbroker.TLSConfig{CAFile: filepath.Join(certs, "ca.pem"),
			CertFile: filepath.Join(certs, "client.pem"), KeyFile: filepath.Join(certs, "client.key")}),
		credbroker.WithBearerToken(func(context.Context) (string, error) { return "tok-1", nil }))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a, err := c.Authorization(context.Background(), "p", "s", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := headerMap(a)["seen-authorization"]; got != "Bearer tok-1" {
		t.Fatalf("the server saw %q", got)
	}
}

func TestRefusedWithoutTheRightCertificates(t *testing.T) {
	target := mtlsServer(t)
	for name, config := range map[string]credbroker.TLSConfig{
		"no client certificate": {CAFile: filepath.Join(certs, "ca.pem")},
		"untrusted CA": {CAFile: filepath.Join(certs, "client.pem"),
			CertFile: filepath.Join(certs, "client.pem"), KeyFile: filepath.Join(certs, "client.key")},
	} {
		c, err := credbroker.Dial(target, credbroker.WithTLS(config), credbroker.WithMaxAttempts(1), credbroker.WithTimeout(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Authorization(context.Background(), "p", "s", time.Second); err == nil {
			t.Fatalf("%s: the call succeeded", name)
		}
		c.Close()
	}
}
