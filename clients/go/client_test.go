package credbroker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	credbroker "credbroker.local/client"
	pb "credbroker.local/client/gen/credbroker/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var (
	passUser = [2]string{"demo.pashouder", "demo-password-1"}
	joUser   = [2]string{"demo-application", "demo-password-1"}
)

// counter counts calls per method name (above the retries: one count per call).
type counter struct {
	mu    sync.Mutex
	calls map[string]int
}

func newCounter() *counter { return &counter{calls: map[string]int{}} }

func (c *counter) interceptor(ctx context.Context, method string, req, reply interface{}, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	c.mu.Lock()
	c.calls[method[strings.LastIndex(method, "/")+1:]]++
	c.mu.Unlock()
	return invoker(ctx, method, req, reply, cc, opts...)
}

func (c *counter) get(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[name]
}

func dial(t *testing.T, opt ...credbroker.Option) *credbroker.Client {
	t.Helper()
	// A generous deadline first (the machine is shared and loaded); opt may override it.
	client, err := credbroker.Dial(brokerTarget, append([]credbroker.Option{credbroker.WithTimeout(30 * time.Second)}, opt...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}

func newSubject() string { return fmt.Sprintf("go-%d", rand.Int63()) }

func putLogin(t *testing.T, c *credbroker.Client, provider, subject string, user [2]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := c.Admin().PutCredential(ctx, &pb.PutCredentialRequest{Provider: provider, Subject: subject,
		Secret: &pb.PutCredentialRequest_UsernamePassword{UsernamePassword: &pb.UsernamePassword{Username: user[0], Password: user[1]}}})
	if err != nil {
		t.Fatal(err)
	}
}

func headerMap(a *credbroker.Authorization) map[string]string {
	m := map[string]string{}
	for _, h := range a.Headers {
		m[h.Name] = h.Value
	}
	return m
}

func TestCachedHeaderIsReusedAndRenewedBeforeExpiry(t *testing.T) {
	normalFake(t)
	control(t, "lifetimes", map[string]float64{"jouwomgeving_jwt_secs": 6})
	count := newCounter()
	c := dial(t, credbroker.WithMargin(0), credbroker.WithUnaryInterceptor(count.interceptor))
	who := newSubject()
	putLogin(t, c, "jouwomgeving-demo", who, joUser)
	ctx := context.Background()
	first, err := c.Authorization(ctx, "jouwomgeving-demo", who, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := c.Authorization(ctx, "jouwomgeving-demo", who, 2*time.Second); again != first || count.get("GetAuthorization") != 1 {
		t.Fatalf("the second call was not served from the cache (%d RPCs)", count.get("GetAuthorization"))
	}
	calls, end := 0, time.Now().Add(60*time.Second)
	var current *credbroker.Authorization
	for {
		if current, err = c.Authorization(ctx, "jouwomgeving-demo", who, 2*time.Second); err != nil {
			t.Fatal(err)
		}
		calls++
		if left := time.Until(current.ExpiresAt); left < 1500*time.Millisecond {
			t.Fatalf("served a header with only %s left", left)
		}
		if current.Fingerprint != first.Fingerprint {
			break
		}
		if time.Now().After(end) {
			t.Fatal("the header was never renewed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !current.ExpiresAt.After(first.ExpiresAt) || !time.Now().Before(first.ExpiresAt) {
		t.Fatalf("not renewed before expiry: old %s, new %s", first.ExpiresAt, current.ExpiresAt)
	}
	if rpcs := count.get("GetAuthorization"); rpcs > 4 || calls <= 4 {
		t.Fatalf("%d RPCs for %d calls", rpcs, calls)
	}
}

func TestCacheMarginWithAClock(t *testing.T) {
	normalFake(t)
	now := time.Now()
	count := newCounter()
	c := dial(t, credbroker.WithMargin(30*time.Second), credbroker.WithClock(func() time.Time { return now }),
		credbroker.WithUnaryInterceptor(count.interceptor))
	who := newSubject()
	putLogin(t, c, "jouwomgeving-demo", who, joUser)
	first, err := c.Authorization(context.Background(), "jouwomgeving-demo", who, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	now = first.ExpiresAt.Add(-31 * time.Second)
	c.Authorization(context.Background(), "jouwomgeving-demo", who, time.Second)
	if n := count.get("GetAuthorization"); n != 1 {
		t.Fatalf("31 s before expiry with a 30 s margin: %d RPCs, want 1", n)
	}
	now = first.ExpiresAt.Add(-29 * time.Second)
	c.Authorization(context.Background(), "jouwomgeving-demo", who, time.Second)
	if n := count.get("GetAuthorization"); n != 2 {
		t.Fatalf("29 s before expiry with a 30 s margin: %d RPCs, want 2", n)
	}
}

// logOutUpstream ends the PASS session behind the broker's back: its header now gets 401.
func logOutUpstream(t *testing.T, a *credbroker.Authorization) {
	req, _ := http.NewRequest(http.MethodDelete, fakeBase+"pass/token/v1/login", nil)
	for _, h := range a.Headers {
		req.Header.Set(h.Name, h.Value)
	}
	response, err := http.DefaultClient.Do(req)
	if err != nil || response.StatusCode >= 300 {
		t.Fatalf("logout: %v %v", err, response)
	}
	response.Body.Close()
}

// countingTransport counts what reaches the upstream.
type countingTransport struct{ statuses []int }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	response, err := http.DefaultTransport.RoundTrip(r)
	if err == nil {
		c.statuses = append(c.statuses, response.StatusCode)
	}
	return response, err
}

func TestA401LeadsToOneReportAndOneRetry(t *testing.T) {
	normalFake(t)
	count := newCounter()
	c := dial(t, credbroker.WithUnaryInterceptor(count.interceptor))
	who := newSubject()
	putLogin(t, c, "pass", who, passUser)
	upstream := &countingTransport{}
	http := &http.Client{Transport: &credbroker.Transport{Client: c, Provider: "pass", Subject: who, Base: upstream}}
	if r, err := http.Get(fakeBase + "pass/data/echo"); err != nil || r.StatusCode != 200 {
		t.Fatalf("first call: %v %v", err, r)
	}
	used, _ := c.Authorization(context.Background(), "pass", who, 30*time.Second)
	logOutUpstream(t, used)
	loginsBefore := len(ledger(t, "pass", "Login"))
	upstream.statuses = nil
	response, err := http.Post(fakeBase+"pass/data/mirror", "text/plain", bytes.NewReader([]byte("replayed body")))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(response.Body)
	response.Body.Close()
	if response.StatusCode != 200 || string(body) != "replayed body" {
		t.Fatalf("retry: %d %q", response.StatusCode, body)
	}
	if fmt.Sprint(upstream.statuses) != "[401 200]" || count.get("ReportRejected") != 1 {
		t.Fatalf("upstream saw %v, %d reports; want [401 200] and 1", upstream.statuses, count.get("ReportRejected"))
	}
	if n := len(ledger(t, "pass", "Login")); n != loginsBefore+1 {
		t.Fatalf("the broker logged in %d times, want once", n-loginsBefore)
	}
}

func TestA401TheBrokerCannotRenewIsReportedOnceAndReturned(t *testing.T) {
	normalFake(t)
	count := newCounter()
	c := dial(t, credbroker.WithUnaryInterceptor(count.interceptor))
	who := newSubject()
	// A BRO token the fake does not know: static, so the broker has nothing to renew.
	_, err := c.Admin().PutCredential(context.Background(), &pb.PutCredentialRequest{Provider: "bro", Subject: who,
		Secret: &pb.PutCredentialRequest_BroToken{BroToken: &pb.BroToken{Username: "0dce6fc98256|999999999|1", Code: strings.Repeat("ab", 32)}}})
	if err != nil {
		t.Fatal(err)
	}
	upstream := &countingTransport{}
	http := &http.Client{Transport: &credbroker.Transport{Client: c, Provider: "bro", Subject: who, Base: upstream}}
	response, err := http.Get(fakeBase + "bro/api/v2/data/echo")
	if err != nil {
		t.Fatal(err)
	}
	response.Body.Close()
	if response.StatusCode != 401 || len(upstream.statuses) != 1 || count.get("ReportRejected") != 1 {
		t.Fatalf("got %d, upstream saw %v, %d reports", response.StatusCode, upstream.statuses, count.get("ReportRejected"))
	}
}

func TestProxyCallRoundTripsABody(t *testing.T) {
	normalFake(t)
	c := dial(t)
	who := newSubject()
	putLogin(t, c, "pass", who, passUser)
	body := bytes.Repeat([]byte{0, 1, 2, 254, 255}, 2000)
	response, err := c.ProxyCall(context.Background(), credbroker.ProxyRequest{Provider: "pass", Subject: who, Method: "POST",
		Path: "data/mirror", Headers: []credbroker.Header{{"content-type", "application/octet-stream"}}, Body: body})
	if err != nil {
		t.Fatal(err)
	}
	if response.Status != 200 || !bytes.Equal(response.Body, body) {
		t.Fatalf("status %d, %d bytes back of %d", response.Status, len(response.Body), len(body))
	}
}

func TestUnavailableIsRetried(t *testing.T) {
	normalFake(t)
	c := dial(t)
	who := newSubject()
	putLogin(t, c, "jouwomgeving-demo", who, joUser)
	control(t, "fail", map[string]interface{}{"provider": "jouwomgeving", "status": 503, "times": 1})
	a, err := c.Authorization(context.Background(), "jouwomgeving-demo", who, 30*time.Second)
	if err != nil {
		t.Fatalf("not retried: %v", err)
	}
	if !strings.HasPrefix(headerMap(a)["authorization"], "JWT ") {
		t.Fatal("no JWT header")
	}
	logins := ledger(t, "jouwomgeving", "Login")
	if len(logins) < 2 || logins[len(logins)-2].Delivery != "InjectedStatus(503)" || logins[len(logins)-1].Delivery != "Replied" {
		t.Fatalf("ledger: %+v", logins)
	}
}

func TestWithoutRetriesUnavailableCarriesTheBrokersMessage(t *testing.T) {
	normalFake(t)
	c := dial(t, credbroker.WithMaxAttempts(1))
	who := newSubject()
	putLogin(t, c, "jouwomgeving-demo", who, joUser)
	control(t, "fail", map[string]interface{}{"provider": "jouwomgeving", "status": 503, "times": 1})
	_, err := c.Authorization(context.Background(), "jouwomgeving-demo", who, 30*time.Second)
	var e *credbroker.Error
	if !errors.As(err, &e) || !errors.Is(err, credbroker.ErrUnavailable) || !strings.Contains(e.Message, "503") {
		t.Fatalf("want UNAVAILABLE with the broker's message, got %v", err)
	}
}

func TestErrorsCarryTheBrokersCode(t *testing.T) {
	c := dial(t, credbroker.WithBearerToken(func(context.Context) (string, error) { return "bearer-secret-123", nil }))
	_, err := c.Authorization(context.Background(), "no-such-provider", "x", 30*time.Second)
	if !errors.Is(err, credbroker.ErrNotFound) || status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "no-such-provider") {
		t.Fatalf("want NOT_FOUND naming the provider, got %v", err)
	}
	if strings.Contains(err.Error(), "bearer-secret-123") {
		t.Fatal("the bearer token leaked into an error")
	}
	_, err = c.ProxyCall(context.Background(), credbroker.ProxyRequest{Provider: "pass", Method: "GET", Path: "../escape"})
	if !errors.Is(err, credbroker.ErrInvalidArgument) {
		t.Fatalf("want INVALID_ARGUMENT, got %v", err)
	}
}

func TestAuthorizationStringHidesTheHeaders(t *testing.T) {
	a := &credbroker.Authorization{Headers: []credbroker.Header{{"authorization", "Bearer s3cret"}}, Fingerprint: "f"}
	if s := fmt.Sprint(a) + fmt.Sprintf("%v %s", a, a); strings.Contains(s, "s3cret") {
		t.Fatal(s)
	}
}

// Debian's default golang-github-golang-protobuf-1-3-dev makes this panic (POLYGLOT.md,
// pitfall 1): grpc's codec must handle messages generated by protoc-gen-go 1.28.
func TestGRPCCodecRoundTripsGeneratedMessages(t *testing.T) {
	codec := encoding.GetCodec("proto")
	in := &pb.GetAuthorizationResponse{Headers: []*pb.Header{{Name: "a", Value: "b"}}, ExpiresAt: timestamppb.Now(), TokenFingerprint: "f"}
	data, err := codec.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	out := &pb.GetAuthorizationResponse{}
	if err := codec.Unmarshal(data, out); err != nil || !proto.Equal(in, out) {
		t.Fatalf("%v %v", err, out)
	}
}
