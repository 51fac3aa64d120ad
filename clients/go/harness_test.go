package credbroker_test

// TestMain starts the real broker binary and the fake upstream (with its control API) for
// the suite. Binaries: CREDBROKER_BIN and FAKE_UPSTREAM_BIN, by default the ones the cargo
// test build produced in target/debug/.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// deadline for start-up: generous, the machine is shared and loaded.
const deadline = 60 * time.Second

var (
	fakeBase     string // http://127.0.0.1:PORT/
	fakeControl  string
	brokerTarget string // 127.0.0.1:PORT
)

func TestMain(m *testing.M) {
	fake, broker, err := startAll()
	code := 1
	if err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
	} else {
		code = m.Run()
	}
	for _, p := range []*process{broker, fake} {
		if p != nil {
			p.stop()
		}
	}
	os.Exit(code)
}

func binary(env, name string) string {
	if path := os.Getenv(env); path != "" {
		return path
	}
	return filepath.Join("..", "..", "target", "debug", name)
}

func startAll() (*process, *process, error) {
	fake, err := start(exec.Command(binary("FAKE_UPSTREAM_BIN", "fake-upstream"), "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"))
	if err != nil {
		return nil, nil, err
	}
	if fakeControl, err = fake.waitFor(`control on (http://\S+/)`); err != nil {
		return fake, nil, err
	}
	if fakeBase, err = fake.waitFor(`fake-upstream listening on (http://\S+/)`); err != nil {
		return fake, nil, err
	}
	cmd := exec.Command(binary("CREDBROKER_BIN", "credbroker"), "serve")
	cmd.Env = append(os.Environ(),
		"CREDBROKER__SERVER__LISTEN=127.0.0.1:0",
		"CREDBROKER__TELEMETRY__LOG_FORMAT=json",
		"CREDBROKER__PROVIDERS__PASS__API_BASE_URL="+fakeBase+"pass/",
		"CREDBROKER__PROVIDERS__BRO__API_BASE_URL="+fakeBase+"bro/api/v2/",
		"CREDBROKER__PROVIDERS__PASSOLUTION__API_BASE_URL="+fakeBase+"passolution/api/v2/",
		"CREDBROKER__PROVIDERS__PASSOLUTION__TOKEN_URL="+fakeBase+"passolution/oauth/token",
		"CREDBROKER__PROVIDERS__JOUWOMGEVING_DEMO__API_BASE_URL="+fakeBase+"jouwomgeving/api/",
		// The 401 tests log a session out right after it was handed out; the broker ignores
		// reports of headers younger than this (2 s by default, against abuse).
		"CREDBROKER__REFRESH__REJECTED_MIN_AGE=0s",
	)
	broker, err := start(cmd)
	if err != nil {
		return fake, nil, err
	}
	brokerTarget, err = broker.waitFor(`credbroker listening.*"addr":"([0-9.:]+)"|"addr":"([0-9.:]+)".*credbroker listening`)
	return fake, broker, err
}

// process: a child whose combined output is kept, line by line.
type process struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	done  chan struct{}
}

func start(cmd *exec.Cmd) (*process, error) {
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w (build it with `cargo nextest run --workspace --no-run`)", cmd.Path, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		scanner := bufio.NewScanner(out)
		scanner.Buffer(make([]byte, 1<<20), 1<<20)
		for scanner.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, scanner.Text())
			p.mu.Unlock()
		}
		close(p.done)
	}()
	return p, nil
}

// waitFor returns the first submatch of the first output line matching pattern.
func (p *process) waitFor(pattern string) (string, error) {
	re := regexp.MustCompile(pattern)
	end := time.Now().Add(deadline)
	for time.Now().Before(end) {
		p.mu.Lock()
		for _, line := range p.lines {
			if m := re.FindStringSubmatch(line); m != nil {
				p.mu.Unlock()
				return strings.Join(m[1:], ""), nil
			}
		}
		p.mu.Unlock()
		select {
		case <-p.done:
			return "", fmt.Errorf("%s exited before printing %q:\n%s", p.cmd.Path, pattern, strings.Join(p.lines, "\n"))
		case <-time.After(50 * time.Millisecond):
		}
	}
	return "", fmt.Errorf("%s did not print %q within %s", p.cmd.Path, pattern, deadline)
}

func (p *process) stop() {
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
	}
	p.cmd.Wait()
}

// --- the fake's control API ---

func control(t *testing.T, path string, body interface{}) {
	t.Helper()
	data, _ := json.Marshal(body)
	response, err := http.Post(fakeControl+path, "application/json", bytes.NewReader(data))
	if err != nil || response.StatusCode >= 300 {
		t.Fatalf("control %s: %v %v", path, err, response)
	}
	response.Body.Close()
}

type ledgerEntry struct{ Provider, Operation, Outcome, Delivery string }

func ledger(t *testing.T, provider, operation string) []ledgerEntry {
	t.Helper()
	response, err := http.Get(fakeControl + "ledger")
	if err != nil {
		t.Fatal(err)
	}
	defer response.Body.Close()
	data, _ := io.ReadAll(response.Body)
	var all, matching []ledgerEntry
	if err := json.Unmarshal(data, &all); err != nil {
		t.Fatal(err)
	}
	for _, e := range all {
		if e.Provider == provider && e.Operation == operation {
			matching = append(matching, e)
		}
	}
	return matching
}

// normalFake resets failures, the ledger and the lifetimes.
func normalFake(t *testing.T) {
	control(t, "reset", map[string]int{})
	control(t, "lifetimes", map[string]float64{"jouwomgeving_jwt_secs": 300, "pass_max_lifetime_secs": 7 * 86400})
}
