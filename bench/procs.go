package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one child process (noproxy or zenmuxd).
type proc struct {
	name    string
	cmd     *exec.Cmd
	done    chan struct{} // closed when it has exited
	waitErr error
	logPath string
}

// procs are all children, so that every exit path can stop them.
var (
	procsMu sync.Mutex
	procs   []*proc
)

func startProc(name, bin string, args, env []string, logPath string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = env
	// Own process group: a Ctrl-C at the terminal reaches only the bench,
	// which stops its children itself. Pdeathsig kills them if the bench
	// dies without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), logPath: logPath}
	go func() {
		p.waitErr = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	procsMu.Lock()
	procs = append(procs, p)
	procsMu.Unlock()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM, then SIGKILL after grace; it waits at most grace+5 s.
func (p *proc) stop(grace time.Duration) {
	if !p.alive() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
}

// stopAll stops every child this process started, in parallel.
func stopAll(grace time.Duration) {
	procsMu.Lock()
	list := slices.Clone(procs)
	procsMu.Unlock()
	var wg sync.WaitGroup
	for _, p := range list {
		wg.Add(1)
		go func() { defer wg.Done(); p.stop(grace) }()
	}
	wg.Wait()
}

// logTail returns the end of a child's log, for error messages.
func (p *proc) logTail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// cpuTime is a process's user+system CPU time from /proc/<pid>/stat.
// The kernel counts in clock ticks of 1/USER_HZ s; USER_HZ is 100 on
// every Linux architecture Go supports.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: fields count from the
	// last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc/pid/stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, errors.New("short /proc/pid/stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("malformed utime/stime in /proc/pid/stat")
	}
	return time.Duration(ut+st) * (time.Second / 100), nil
}

// rssBytes is VmRSS from /proc/<pid>/status.
func rssBytes(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest) // "12345 kB"
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				if err != nil {
					return 0, err
				}
				return kb << 10, nil
			}
		}
	}
	return 0, errors.New("no VmRSS in /proc/pid/status")
}

// rssSampler records a process's largest VmRSS, sampled every 100 ms.
type rssSampler struct {
	pid  int
	stop chan struct{}
	done chan struct{}
	max  int64
}

func sampleRSS(pid int) *rssSampler {
	s := &rssSampler{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	if v, err := rssBytes(pid); err == nil {
		s.max = v
	}
	go func() {
		defer close(s.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				if v, err := rssBytes(pid); err == nil && v > s.max {
					s.max = v
				}
			}
		}
	}()
	return s
}

// finish stops sampling and returns the maximum in bytes.
func (s *rssSampler) finish() int64 {
	close(s.stop)
	<-s.done
	if v, err := rssBytes(s.pid); err == nil && v > s.max {
		s.max = v
	}
	return s.max
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitTCP waits until addr accepts connections, p is alive, and at most d.
func waitTCP(ctx context.Context, p *proc, addr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if !p.alive() {
			return fmt.Errorf("%s exited: %v\n%s", p.name, p.waitErr, p.logTail(2000))
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("%s did not listen on %s within %s", p.name, addr, d)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// buildBinary runs go build in the module root.
func buildBinary(ctx context.Context, root, pkg, out string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = root
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, buf.String())
	}
	return nil
}

// moduleRoot finds the directory holding zenmux's go.mod, from the
// working directory upwards.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for range 64 {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.HasPrefix(bytes.TrimSpace(b), []byte("module zenmux")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", errors.New("run it inside the zenmux module (no go.mod with `module zenmux` above the working directory)")
}

// ---- zenmuxd ----

const stubKeyEnv = "ZENMUX_BENCH_STUB_KEY"

// zenmuxd is one started node with its subscription key.
type zenmuxd struct {
	p         *proc
	proxyAddr string
	adminURL  string
	token     string
	key       string
	dataDir   string
	ack       string // [accounting] ack
}

// benchFlows is the bench plan's 5-hour, weekly and monthly quota: the
// most both the config (amounts ≤ 1e9) and the ledger (MaxPlanMicroFlows =
// 1e15 µFlows) accept. At the model's prices a request costs ~1e-8 Flows.
const benchFlows = 1e9

// zenmuxdConfig is one node's config: its id, data dir and ports, the
// accounting ack, the stub provider, the bench plan and model; extra
// (the [admin] and [cluster] sections of a cluster node) is appended.
func zenmuxdConfig(id, dataDir string, proxyPort, adminPort, raftPort int, ack, stubAddr, extra string) string {
	return fmt.Sprintf(`# generated by go run ./bench
[node]
id = %q
data_dir = %q
listen = "127.0.0.1:%d"
admin_listen = "127.0.0.1:%d"
raft_listen = "127.0.0.1:%d"

[accounting]
ack = %q

[[providers]]
name = "echo"
kind = "echo"

[[providers]]
name = "stub"
kind = "openai"
base_url = "http://%s/v1"
api_key_env = %q

[[plans]]
id = "bench"
name = "Bench"
price_usd = 1
window_5h_flows = %.0f
weekly_flows = %.0f
monthly_flows = %.0f
rpm = 1000000
burst = 1000000

[[models]]
id = "bench/stub"
provider = "stub"
upstream = "stub-model"
input_usd_per_mtok = 0.01
output_usd_per_mtok = 0.02
plans = ["bench"]
%s`, id, dataDir, proxyPort, adminPort, raftPort, ack, stubAddr, stubKeyEnv, benchFlows, benchFlows, benchFlows, extra)
}

// zenmuxdEnv is the bench's environment for a zenmuxd child: the stub's
// key, and no admin token from the environment (it would override the
// token file).
func zenmuxdEnv(stubKey string) []string {
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ZENMUX_ADMIN_TOKEN=") && !strings.HasPrefix(kv, stubKeyEnv+"=") {
			env = append(env, kv)
		}
	}
	return append(env, stubKeyEnv+"="+stubKey)
}

// freePorts returns n loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	out := make([]int, n)
	for i := range out {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

// waitReadyz waits until adminURL/readyz answers 200, p is alive, and
// at most until deadline.
func waitReadyz(ctx context.Context, hc *http.Client, p *proc, adminURL string, deadline time.Time) error {
	for i := 0; i < 100_000; i++ { // bounded by the deadline; the count is a backstop
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !p.alive() {
			return fmt.Errorf("exited during start: %v", p.waitErr)
		}
		if time.Now().After(deadline) {
			return errors.New("/readyz not 200 in time")
		}
		resp, err := hc.Get(adminURL + "/readyz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("/readyz not 200 in time")
}

// startZenmuxd writes a config into dir, starts the binary, waits for
// readiness and creates the account, subscription and key.
func startZenmuxd(ctx context.Context, bin, dir, name, ack, stubAddr, stubKey string) (*zenmuxd, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	z := &zenmuxd{dataDir: filepath.Join(dir, "data"), proxyAddr: fmt.Sprintf("127.0.0.1:%d", ports[0]), adminURL: fmt.Sprintf("http://127.0.0.1:%d", ports[1]), ack: ack}
	cfgPath := filepath.Join(dir, "zenmux.toml")
	if err := os.WriteFile(cfgPath, []byte(zenmuxdConfig("bench", z.dataDir, ports[0], ports[1], ports[2], ack, stubAddr, "")), 0o600); err != nil {
		return nil, err
	}
	p, err := startProc(name, bin, []string{"-config", cfgPath}, zenmuxdEnv(stubKey), filepath.Join(dir, "zenmuxd.log"))
	if err != nil {
		return nil, err
	}
	z.p = p
	fail := func(err error) (*zenmuxd, error) {
		return nil, fmt.Errorf("%s: %w\n--- log tail ---\n%s", name, err, p.logTail(3000))
	}
	// Ready: /readyz 200 on the admin listener, at most 60 s.
	hc := &http.Client{Timeout: 10 * time.Second}
	if err := waitReadyz(ctx, hc, p, z.adminURL, time.Now().Add(60*time.Second)); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return fail(err)
	}
	tok, err := os.ReadFile(filepath.Join(z.dataDir, "admin.token"))
	if err != nil {
		return fail(err)
	}
	z.token = strings.TrimSpace(string(tok))
	if z.key, err = z.provision(hc, 1); err != nil {
		return fail(err)
	}
	return z, nil
}

// provision creates, through z's admin API, the n-th account (1 for the
// chat phases, more for the self-service run), its subscription to the
// bench plan and a subscription key, and returns the key.
func (z *zenmuxd) provision(hc *http.Client, n int) (string, error) {
	var acct struct {
		ID string `json:"id"`
	}
	b, err := z.admin(hc, "POST", "/admin/v1/accounts", "", map[string]any{"email": fmt.Sprintf("bench%d@example.com", n), "name": fmt.Sprintf("Bench %d", n)})
	if err != nil {
		return "", err
	}
	if err := json.Unmarshal(b, &acct); err != nil || acct.ID == "" {
		return "", fmt.Errorf("create account: %s", b)
	}
	if _, err := z.admin(hc, "POST", "/admin/v1/accounts/"+acct.ID+"/subscription", fmt.Sprintf("bench-sub-%d", n), map[string]any{"plan": "bench"}); err != nil {
		return "", err
	}
	var key struct {
		Key string `json:"key"`
	}
	b, err = z.admin(hc, "POST", "/admin/v1/accounts/"+acct.ID+"/keys", "", map[string]any{"kind": "subscription", "name": "bench"})
	if err != nil {
		return "", err
	}
	if err := json.Unmarshal(b, &key); err != nil || key.Key == "" {
		return "", fmt.Errorf("create key: %s", b)
	}
	return key.Key, nil
}

// admin calls the admin API and returns the body of a 2xx answer.
func (z *zenmuxd) admin(hc *http.Client, method, path, idem string, body any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, z.adminURL+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+z.token)
	req.Header.Set("Content-Type", "application/json")
	if idem != "" {
		req.Header.Set("Idempotency-Key", idem)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, out)
	}
	return out, nil
}
