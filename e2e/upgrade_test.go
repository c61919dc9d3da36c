package e2e

// A rolling upgrade from the previous release (docs/operations.md,
// "Upgrades"): three nodes of the release named in
// testdata/previous-release are replaced one at a time by this build while
// clients keep sending requests.

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"zenmux/ledger"
)

// upgradeEnv turns TestRollingUpgrade on: it builds a second zenmuxd.
const upgradeEnv = "ZENMUX_UPGRADE"

// upgradeModel is priced so that each request costs a whole, non-zero
// number of micro-Flows; the echo provider answers it.
const upgradeModel = `
[[models]]
id = "upgrade/echo"
provider = "echo"
upstream = "echo"
input_usd_per_mtok = 3
output_usd_per_mtok = 15
plans = ["chaos"]
`

// upgradeBody is every load request: the same body, so the same Flows.
const upgradeBody = `{"model":"upgrade/echo","max_tokens":4,"messages":[{"role":"user","content":"rolling upgrade"}]}`

// previousRelease is the commit in testdata/previous-release.
func previousRelease(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "previous-release"))
	if err != nil {
		t.Fatal(err)
	}
	hash := strings.TrimSpace(string(b))
	if len(hash) != 40 || strings.Trim(hash, "0123456789abcdef") != "" {
		t.Fatalf("testdata/previous-release holds %q, want a full 40-hex commit hash", hash)
	}
	return hash
}

// buildRelease builds zenmuxd from the repository's commit hash (git
// archive into a temporary tree, go build there with the same module and
// build caches) and returns the binary's path and the tree.
func buildRelease(t *testing.T, hash string) (bin, src string) {
	t.Helper()
	root := ".."
	if out, err := exec.Command("git", "-C", root, "cat-file", "-e", hash+"^{commit}").CombinedOutput(); err != nil {
		t.Fatalf("the previous release %s is not in this clone (a shallow clone? git fetch --unshallow): %v %s", hash, err, out)
	}
	dir := t.TempDir()
	tarball := filepath.Join(dir, "src.tar")
	src, bin = filepath.Join(dir, "src"), filepath.Join(dir, "zenmuxd-"+hash[:12])
	if err := os.Mkdir(src, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*exec.Cmd{
		exec.Command("git", "-C", root, "archive", "-o", tarball, hash),
		exec.Command("tar", "-x", "-f", tarball, "-C", src),
	} {
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v %s", strings.Join(c.Args, " "), err, out)
		}
	}
	build := exec.Command("go", "build", "-o", bin, "./cmd/zenmuxd")
	build.Dir = src
	build.Env = append(os.Environ(), "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the previous release %s: %v\n%s", hash, err, out)
	}
	return bin, src
}

// decodeCheck is a program built in the previous release's tree: for each
// hex line on stdin, that release's ledger.Decode, then its Encode of what
// it decoded ("ok <hex>"), or "err <reason>".
const decodeCheck = `package main

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"os"

	"zenmux/ledger"
)

func main() {
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		b, err := hex.DecodeString(sc.Text())
		if err == nil {
			var cmd ledger.Command
			var ts int64
			if cmd, ts, err = ledger.Decode(b); err == nil {
				if b, err = ledger.Encode(cmd, ts); err == nil {
					fmt.Println("ok", hex.EncodeToString(b))
					continue
				}
			}
		}
		fmt.Println("err", err)
	}
}
`

// checkPreviousDecodes holds the rule of docs/operations.md, "Upgrades":
// nothing this build proposes may be undecodable by the previous release
// while a voter still runs it. Every command type this build decodes is
// encoded as this build would propose it (the zero value of each JSON
// command, a charge batch with every field set) and handed to the previous
// release (src, its tree): it must decode each one and encode it back to
// the same command, so no type, version or field is new to it. A release
// that adds one fails here until it gates the new form on every voter's
// build.
func checkPreviousDecodes(t *testing.T, src string) {
	t.Helper()
	const ts = 1767225600_000000000
	var cmds [][]byte
	for typ := 1; typ < 256; typ++ {
		env := append([]byte{byte(typ), 1}, make([]byte, 8)...)
		cmd, _, err := ledger.Decode(append(env, "{}"...))
		switch {
		case err == nil && ledger.Gated(cmd):
			// The leader proposes it only once every member answers
			// /internal/v1/version, which the previous release lacks
			// (cluster/format.go); TestRollingUpgrade checks it stays
			// unproposed until the last node runs this build.
			continue
		case err == nil:
		case strings.HasSuffix(err.Error(), fmt.Sprintf("type %d", typ)):
			continue // not a command of this build
		case typ == int((*ledger.ChargeBatch)(nil).Type()):
			cmd = &ledger.ChargeBatch{Retry: true, Charges: []ledger.Charge{{ReqID: "req_1", Node: "n2", AccountID: "acct_1", KeyID: "key_1",
				Model: "upgrade/echo", Billing: ledger.BillingPayg, ViaExtra: true, Status: "upstream_cut", Estimated: true, AdmittedAt: ts - 1,
				InputTokens: 1, OutputTokens: 2, CacheReadTokens: 3, CacheWriteTokens: 4, Images: 5}}}
		default:
			t.Fatalf("command type %d decodes from neither {} nor a charge batch's form: teach checkPreviousDecodes to build one (%v)", typ, err)
		}
		b, err := ledger.Encode(cmd, ts)
		if err != nil {
			t.Fatalf("%T: %v", cmd, err)
		}
		cmds = append(cmds, b)
	}
	dir := filepath.Join(src, "cmd", "decodecheck")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(decodeCheck), 0o600); err != nil {
		t.Fatal(err)
	}
	var in strings.Builder
	for _, b := range cmds {
		in.WriteString(hex.EncodeToString(b) + "\n")
	}
	run := exec.Command("go", "run", "./cmd/decodecheck")
	var stderr bytes.Buffer
	run.Dir, run.Env, run.Stdin, run.Stderr = src, append(os.Environ(), "GOWORK=off"), strings.NewReader(in.String()), &stderr
	out, err := run.Output()
	if err != nil {
		t.Fatalf("the previous release's decoder: %v\n%s", err, stderr.Bytes())
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(cmds) {
		t.Fatalf("the previous release's decoder answered %d lines for %d commands", len(lines), len(cmds))
	}
	same := 0
	for i, line := range lines {
		b := cmds[i]
		back, err := hex.DecodeString(strings.TrimPrefix(line, "ok "))
		if !strings.HasPrefix(line, "ok ") || err != nil {
			t.Errorf("rule (docs/operations.md, Upgrades): the previous release cannot decode command type %d, version %d as this build proposes it: %s", b[0], b[1], line)
			continue
		}
		if !sameCommand(b, back) {
			t.Errorf("rule (docs/operations.md, Upgrades): the previous release reads command type %d, version %d as something else: %x, back %x", b[0], b[1], b, back)
			continue
		}
		same++
	}
	t.Logf("the previous release decodes %d of the %d command types as this build proposes them", same, len(cmds))
}

// sameCommand compares two encoded commands: the same envelope, and the
// same payload (JSON compared as values, so field order does not matter).
func sameCommand(a, b []byte) bool {
	const header = 10
	if len(a) < header || len(b) < header || !bytes.Equal(a[:header], b[:header]) {
		return false
	}
	var x, y any
	if json.Unmarshal(a[header:], &x) == nil && json.Unmarshal(b[header:], &y) == nil {
		return reflect.DeepEqual(x, y)
	}
	return bytes.Equal(a[header:], b[header:])
}

// upgradeLoad is what the clients of TestRollingUpgrade saw.
type upgradeLoad struct {
	mu        sync.Mutex
	acked     []string    // request ids answered 200 with a whole body
	ackedAt   []time.Time // when each was
	retried   map[string]int
	uncertain int      // attempts that may have reached a node and got no whole answer
	lost      []string // requests no node answered 200 within their budget
	bad       []string // unclean refusals
}

// send makes one request, retried on the next node after a refusal or a
// transport failure, up to 20 attempts in 30 s.
func (l *upgradeLoad) send(ctx context.Context, nodes []*Node, key string, first int) {
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for attempt := 0; attempt < 20 && time.Now().Before(deadline) && ctx.Err() == nil; attempt++ {
		n := nodes[(first+attempt)%len(nodes)]
		r, err := chaosTry(ctx, upgradeHTTP, "POST", n.Proxy+"/v1/chat/completions", upgradeBody, "Authorization: Bearer "+key)
		switch {
		case err == nil && r.Status == 200:
			l.mu.Lock()
			l.acked = append(l.acked, r.Header.Get("x-zenmux-request-id"))
			l.ackedAt = append(l.ackedAt, time.Now())
			l.mu.Unlock()
			return
		case err != nil:
			// A refused connection never reached zenmuxd; anything else
			// (a reset, a cut answer) may have been served and charged.
			last = fmt.Sprintf("%s: %v", n.ID, err)
			if !errors.Is(err, syscall.ECONNREFUSED) {
				l.mu.Lock()
				l.uncertain++
				l.mu.Unlock()
			}
		default:
			code, clean := chaosCleanError(r.Status, r.Body)
			last = fmt.Sprintf("%s: %d %.200s", n.ID, r.Status, r.Body)
			l.mu.Lock()
			if !clean {
				l.bad = append(l.bad, last)
			}
			l.retried[fmt.Sprintf("%d %s", r.Status, code)]++
			l.mu.Unlock()
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ctx.Err() == nil {
		l.mu.Lock()
		l.lost = append(l.lost, last)
		l.mu.Unlock()
	}
}

// upgradeHTTP is the load's client: it never replays a request itself.
var upgradeHTTP = chaosHTTP(20 * time.Second)

// upgradeUsedFlows is an account's monthly used Flows in micro-Flows, read
// through n.
func upgradeUsedFlows(t *testing.T, n *Node, acct string) int64 {
	t.Helper()
	r := n.AdminDo("GET", "/admin/v1/accounts/"+acct+"/usage", "")
	if r.Status != 200 {
		t.Fatalf("usage on %s: %d %s", n.ID, r.Status, r.Body)
	}
	used, err := chaosMicro(Get(r.JSON(t), "monthly.used_flows"))
	if err != nil {
		t.Fatalf("usage on %s: monthly.used_flows: %v", n.ID, err)
	}
	return used
}

// receivedStreamVersion finds, among a node's snapshots, one it received
// from a leader (a stream, not a local checkpoint) past index after, and
// says which stream version it is: 1 without a header, else the header's.
func receivedStreamVersion(dataDir string, after uint64) (int, error) {
	dirs, err := filepath.Glob(filepath.Join(dataDir, "snapshots", "*", "meta.json"))
	if err != nil {
		return 0, err
	}
	for _, meta := range dirs {
		b, err := os.ReadFile(meta)
		if err != nil {
			return 0, err
		}
		var m struct {
			Index      uint64
			Checkpoint bool `json:"checkpoint"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			return 0, err
		}
		if m.Checkpoint || m.Index <= after {
			continue
		}
		f, err := os.Open(filepath.Join(filepath.Dir(meta), "state.bin"))
		if err != nil {
			return 0, err
		}
		head := make([]byte, 3+len("zenmux-snapshot"))
		n, _ := io.ReadFull(f, head)
		f.Close()
		if n > 0 && head[0] != 0 {
			return 1, nil
		}
		if n == len(head) && string(head[2:n-1]) == "zenmux-snapshot" {
			return int(head[n-1]), nil
		}
		return 0, fmt.Errorf("%s: a stream starting %q", meta, head[:n])
	}
	return 0, fmt.Errorf("no snapshot received past index %d in %s", after, dataDir)
}

// upgradeCaughtUp waits (bounded: 60 s) until n has applied as much as the
// other running nodes had when it was called.
func upgradeCaughtUp(t *testing.T, n *Node, nodes []*Node) uint64 {
	t.Helper()
	var target uint64
	for _, o := range nodes {
		if o != n {
			target = max(target, chaosApplied(t, o))
		}
	}
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if chaosApplied(t, n) >= target {
			return target
		}
	}
	t.Fatalf("%s did not reach applied index %d within 60 s of its restart", n.ID, target)
	return 0
}

// TestRollingUpgrade starts three nodes on the previous release, then,
// under load through all three proxies, replaces them one at a time with
// this build: SIGTERM (a drain), the same config and data dir on the new
// binary, ready and caught up, next; followers first, the leader last. The
// first follower stays down until the old leader has taken a snapshot past
// it, so it catches up from an old leader's snapshot stream (version 1).
// A refused or failed request is retried on another node. Afterwards no
// request was lost, every request answered 200 is in the request log
// exactly once, the account's used Flows are exactly the logged requests'
// Flows, and the three state hashes agree. Last, the previous release
// refuses to start on an upgraded data dir: there is no going back in
// place. Before the cluster starts, checkPreviousDecodes.
func TestRollingUpgrade(t *testing.T) {
	if os.Getenv(upgradeEnv) != "1" {
		t.Skipf("set %s=1 to run: it builds the previous release's zenmuxd from git", upgradeEnv)
	}
	const trailing = 64
	start := time.Now()
	hash := previousRelease(t)
	old, src := buildRelease(t, hash)
	t.Logf("built the previous release %s in %s", hash[:12], time.Since(start).Round(time.Millisecond))
	checkPreviousDecodes(t, src)

	nodes := startClusterSpec(t, clusterSpec{nodes: 3, binary: old,
		clusterKeys: fmt.Sprintf("snapshot_entries = %d\n", trailing), tail: chaosConfig("") + upgradeModel})
	acct, key := chaosAccount(t, nodes[0])
	load := &upgradeLoad{retried: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range nodes { // one request through each node, to price one
		load.send(ctx, nodes, key, i)
	}
	if len(load.acked) != len(nodes) {
		t.Fatalf("warm-up on the previous release: %d of %d answered 200: %v %v", len(load.acked), len(nodes), load.lost, load.bad)
	}
	waitSameState(t, nodes)
	used := upgradeUsedFlows(t, nodes[0], acct)
	perRequest := used / int64(len(nodes))
	if perRequest <= 0 || perRequest*int64(len(nodes)) != used {
		t.Fatalf("%d requests used %d µFlows: not a whole, non-zero number each", len(nodes), used)
	}

	var (
		wg   sync.WaitGroup
		seq  atomic.Int64
		stop atomic.Bool
	)
	loadDeadline := time.Now().Add(4 * time.Minute)
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() && ctx.Err() == nil && time.Now().Before(loadDeadline) {
				load.send(ctx, nodes, key, int(seq.Add(1)))
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	defer func() { cancel(); wg.Wait() }() // on a t.Fatal below, stop the load first
	acked := func() int {
		load.mu.Lock()
		defer load.mu.Unlock()
		return len(load.acked)
	}
	time.Sleep(time.Second)

	leader := chaosLeader(t, nodes)
	var order []*Node
	for _, n := range nodes {
		if n != leader {
			order = append(order, n)
		}
	}
	order = append(order, leader)
	loadStart := time.Now()
	for i, n := range order {
		before := acked()
		stoppedAt := chaosApplied(t, n)
		n.Stop()
		down := time.Now()
		snapshot := ""
		if i == 0 {
			// Down until the old leader's log no longer holds what this
			// node lacks: it must install the old leader's snapshot.
			var idx []uint64
			for deadline := time.Now().Add(40 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
				if idx = chaosSnapshotIndexes(leader.Dir); len(idx) > 0 && idx[len(idx)-1] > stoppedAt+trailing+1 {
					break
				}
			}
			if len(idx) == 0 || idx[len(idx)-1] <= stoppedAt+trailing+1 {
				t.Fatalf("the old leader %s took no snapshot past %s's index %d within 40 s (its snapshots: %v)", leader.ID, n.ID, stoppedAt, idx)
			}
			snapshot = fmt.Sprintf(", the old leader's snapshot at %d to install", idx[len(idx)-1])
		}
		n.Binary = binary
		n.Start()
		caught := upgradeCaughtUp(t, n, nodes)
		t.Logf("t=%.1fs %s upgraded (stopped at index %d%s): down %s, caught up to %d; %d requests answered meanwhile",
			time.Since(loadStart).Seconds(), n.ID, stoppedAt, snapshot, time.Since(down).Round(time.Millisecond), caught, acked()-before)
		if i == 0 {
			if v, err := receivedStreamVersion(n.Dir, stoppedAt); err != nil || v != 1 {
				t.Errorf("%s did not catch up from the old leader's version-1 snapshot stream: version %d, %v", n.ID, v, err)
			}
		}
		if acked() == before {
			t.Errorf("no request was answered 200 while %s was upgraded", n.ID)
		}
		if i < len(order)-1 {
			if f := upgradeLogFormat(t, n); f != ledger.LogFormatEntries {
				t.Errorf("the request-log format rose to %d while a member still ran the previous release", f)
			}
		}
	}
	newLeader := chaosLeader(t, nodes)
	// The last member's start lets the leader raise the request-log format
	// (cluster/format.go): charges from then on are logged one block per
	// batch, and the request log read below spans both formats.
	raised := time.Now()
	for upgradeLogFormat(t, newLeader) != ledger.LogFormatCurrent {
		if time.Since(raised) > 20*time.Second {
			t.Fatalf("the request-log format did not rise within 20 s of the whole cluster running this build")
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("the request-log format rose to %d %s after the last upgrade", ledger.LogFormatCurrent, time.Since(raised).Round(time.Millisecond))
	time.Sleep(time.Second) // the whole cluster on this build, under load
	stop.Store(true)
	wg.Wait()
	t.Logf("load over %.1fs; leader %s → %s", time.Since(loadStart).Seconds(), leader.ID, newLeader.ID)

	chaosWaitStable(t, nodes, 60*time.Second)
	load.mu.Lock()
	defer load.mu.Unlock()
	var maxGap time.Duration
	for i := 1; i < len(load.ackedAt); i++ {
		maxGap = max(maxGap, load.ackedAt[i].Sub(load.ackedAt[i-1]))
	}
	entries := chaosRequestLog(t, nodes[1], acct, len(load.acked)/1000+20)
	logged := make(map[string]int, len(entries))
	var dups, missing, extra []string
	for _, e := range entries {
		if logged[e.ID]++; logged[e.ID] == 2 {
			dups = append(dups, e.ID)
		}
	}
	ackedSet := make(map[string]bool, len(load.acked))
	for _, id := range load.acked {
		if ackedSet[id] {
			t.Errorf("two answers carried request id %s", id)
		}
		ackedSet[id] = true
		if logged[id] == 0 {
			missing = append(missing, id)
		}
	}
	for id := range logged {
		if !ackedSet[id] {
			extra = append(extra, id)
		}
	}
	t.Logf("%d requests answered 200 (longest gap between answers %s), %d refusals retried %v, %d uncertain attempts; request log %d entries; %d µFlows each",
		len(load.acked), maxGap.Round(time.Millisecond), sumCounts(load.retried), load.retried, load.uncertain, len(entries), perRequest)
	if len(load.lost) > 0 {
		t.Errorf("%d requests got no 200 from any node: %s", len(load.lost), chaosSample(load.lost, 5))
	}
	if len(load.bad) > 0 {
		t.Errorf("unclean refusals: %s", chaosSample(load.bad, 5))
	}
	if len(missing) > 0 || len(dups) > 0 {
		t.Errorf("rule C2: answered 200 but not in the request log: %s; logged twice: %s", chaosSample(missing, 10), chaosSample(dups, 10))
	}
	if len(extra) > load.uncertain {
		t.Errorf("rule Q7: %d logged requests were never answered 200, more than the %d attempts that got no whole answer: %s",
			len(extra), load.uncertain, chaosSample(extra, 10))
	}
	for _, n := range nodes {
		if got, want := upgradeUsedFlows(t, n, acct), int64(len(entries))*perRequest; got != want {
			t.Errorf("rule C2: %s says %d µFlows used, want %d requests × %d = %d", n.ID, got, len(entries), perRequest, want)
		}
		if reqs, _, _ := chaosModelUsage(t, n, acct, "upgrade/echo"); reqs != int64(len(entries)) {
			t.Errorf("rule C2: %s counts %d requests by model, the request log %d", n.ID, reqs, len(entries))
		}
	}
	if maxGap > 5*time.Second {
		t.Errorf("rule C3: no request was answered for %s during the upgrade", maxGap)
	}
	hashes, same := stateHashes(t, nodes)
	if !same {
		t.Errorf("rule C1: state hashes differ after the upgrade: %v", hashes)
	}

	// No going back in place (docs/operations.md, "Upgrades"): the previous
	// release does not start on a data dir this build has opened.
	back := nodes[2]
	back.Stop()
	back.Binary = old
	if err := back.start(); err == nil {
		t.Errorf("the previous release started on %s's upgraded data dir", back.ID)
	} else {
		t.Logf("the previous release on %s's upgraded data dir: %s", back.ID, tail(err.Error(), 300))
	}
	t.Logf("whole test %s", time.Since(start).Round(time.Millisecond))
}

// upgradeLogFormat is the request-log format node n says the cluster logs
// in (GET /admin/v1/cluster; the previous release's answer has none: 0).
func upgradeLogFormat(t *testing.T, n *Node) int {
	t.Helper()
	r := n.AdminDo("GET", "/admin/v1/cluster", "")
	var v struct {
		LogFormat int `json:"log_format"`
	}
	if r.Status != 200 || json.Unmarshal(r.Body, &v) != nil {
		t.Fatalf("GET /admin/v1/cluster on %s: %d %.300s", n.ID, r.Status, r.Body)
	}
	return v.LogFormat
}

// sumCounts adds a map's counts.
func sumCounts(m map[string]int) int {
	s := 0
	for _, c := range m {
		s += c
	}
	return s
}
