package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// backupLine is what `zenmuxd backup` prints.
var backupLine = regexp.MustCompile(`^backup (\S+): index (\d+), state hash ([0-9a-f]{64}), (\d+) bytes, from node (\S+) at \S+\n$`)

// restoreLine is what `zenmuxd restore` prints.
var restoreLine = regexp.MustCompile(`^restored index (\d+), state hash ([0-9a-f]{64}), \d+ records `)

// paygAccount creates an account with a $1,000 balance and a
// pay-as-you-go key: it holds no quota allowance on any node, so a start
// (which releases the node's allowances) writes nothing to its state.
func paygAccount(t *testing.T, n *Node) (acct, key string) {
	t.Helper()
	acct = Get(wtWant(t, n.AdminDo("POST", "/admin/v1/accounts", `{"email":"backup@example.com","name":"Backup"}`), 201), "id")
	wtWant(t, n.AdminDo("POST", "/admin/v1/accounts/"+acct+"/balance", `{"add_usd":1000}`, "Idempotency-Key: backup-topup"), 200)
	key = Get(wtWant(t, n.AdminDo("POST", "/admin/v1/accounts/"+acct+"/keys", `{"kind":"payg","name":"backup"}`), 201), "key")
	return acct, key
}

// backupConfig: the chaos tests' echo model and quorum acks, and a
// pay-as-you-go rate limit the load never reaches.
var backupConfig = chaosConfig("") + "\n[payg]\nrpm = 1000000\nburst = 1000000\n"

const backupChatBody = `{"model":"chaos/echo","messages":[{"role":"user","content":"backup"}]}`

// backupChat is one echo chat: its status and request id.
func backupChat(hc *http.Client, n *Node, key string) (int, string, error) {
	r, err := chaosTry(context.Background(), hc, "POST", n.Proxy+"/v1/chat/completions", backupChatBody, "Authorization: Bearer "+key)
	if err != nil {
		return 0, "", err
	}
	return r.Status, r.Header.Get("x-zenmux-request-id"), nil
}

// loadRecord is one request of the load: when it was sent and answered.
type loadRecord struct {
	sent, answered time.Time
	ok             bool
	failure        string // the status or error of a chat not answered 200
}

// TestBackupRestoreUnderLoad: `zenmuxd backup` against a follower while
// echo chats go through two nodes' proxies, then `zenmuxd restore` into a
// new three-node cluster. The state restore writes hashes to the
// backup's state hash; the three restored nodes agree once the two others
// joined; the account's request log holds exactly the entries the
// original had at the backup's index (the oldest N of its final log,
// with N between the chats answered before the backup started and those
// sent before it ended); and the old key is admitted and metered.
func TestBackupRestoreUnderLoad(t *testing.T) {
	nodes := startClusterSpec(t, clusterSpec{nodes: 3, head: backupConfig})
	leader := chaosLeader(t, nodes)
	var follower *Node
	var proxies []*Node
	for _, n := range nodes {
		if n != leader {
			follower = n
			proxies = append(proxies, n)
		}
	}
	acct, key := paygAccount(t, leader)
	dir := t.TempDir()
	tokenFile := writeFile(t, dir, "admin.token", []byte(leader.Token+"\n"))

	// Both proxies know the key before the load starts (a follower may
	// not have applied it yet); these chats count with the load's.
	hc := chaosHTTP(10 * time.Second)
	var records []loadRecord
	for _, n := range proxies {
		for i := 0; ; i++ {
			rec := loadRecord{sent: time.Now()}
			status, _, err := backupChat(hc, n, key)
			rec.answered, rec.ok = time.Now(), err == nil && status == 200
			records = append(records, rec)
			if rec.ok {
				break
			}
			if i == 50 {
				t.Fatalf("%s does not admit the new key: %d %v", n.ID, status, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// The load: four clients, round-robin over two followers' proxies,
	// at most 4 × 600 chats and 30 s.
	stop := make(chan struct{})
	var mu sync.Mutex
	var wg sync.WaitGroup
	deadline := time.Now().Add(30 * time.Second)
	for c := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 600 && time.Now().Before(deadline); i++ {
				select {
				case <-stop:
					return
				default:
				}
				rec := loadRecord{sent: time.Now()}
				status, _, err := backupChat(hc, proxies[(c+i)%2], key)
				rec.answered, rec.ok = time.Now(), err == nil && status == 200
				if !rec.ok {
					rec.failure = fmt.Sprint(status, " ", err)
				}
				mu.Lock()
				records = append(records, rec)
				mu.Unlock()
			}
		}()
	}
	time.Sleep(time.Second)
	out := filepath.Join(dir, "zenmux.backup")
	started := time.Now()
	stdout, stderr, code := runBinary(t, "backup", "-admin", follower.Admin, "-token-file", tokenFile, "-out", out)
	ended := time.Now()
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if code != 0 {
		t.Fatalf("zenmuxd backup exited %d: %s%s", code, stdout, stderr)
	}
	m := backupLine.FindStringSubmatch(stdout)
	if m == nil || m[1] != out || m[5] != follower.ID {
		t.Fatalf("zenmuxd backup printed %q", stdout)
	}
	index, hash := m[2], m[3]
	if st, err := os.Stat(out); err != nil || strconv.FormatInt(st.Size(), 10) != m[4] {
		t.Fatalf("backup file: %v (printed %s bytes)", err, m[4])
	}
	if _, err := os.Stat(out + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("zenmuxd backup left %s.tmp: %v", out, err)
	}
	answeredBefore, sentBefore, ok := 0, 0, 0
	failures := map[string]int{}
	for _, r := range records {
		if r.failure != "" {
			failures[r.failure]++
		}
		if r.ok && r.answered.Before(started) {
			answeredBefore++
		}
		if r.sent.Before(ended) {
			sentBefore++
		}
		if r.ok {
			ok++
		}
	}
	if answeredBefore == 0 || sentBefore == len(records) {
		t.Fatalf("the load did not straddle the backup: %d chats, %d answered before it started", len(records), answeredBefore)
	}
	t.Logf("load: %d chats (%d answered 200; others %v), %d answered before the backup started, %d sent before it ended; backup at index %s, %s bytes, took %s",
		len(records), ok, failures, answeredBefore, sentBefore, index, m[4], ended.Sub(started).Round(time.Millisecond))
	original := chaosRequestLog(t, leader, acct, 20)
	for _, n := range nodes {
		n.Kill()
	}

	// The new cluster: its first node restored from the file (restore
	// hashes the state it wrote, as the node computes it, before the node
	// starts: a start writes at once, releasing its quota allowances, and
	// every command moves the ledger's clock record), then started; two
	// more join it with empty data dirs and catch up from its snapshot.
	restored, restoredIndex, restoredHash := restoredCluster(t, out, backupConfig)
	if restoredIndex != index || restoredHash != hash {
		t.Fatalf("zenmuxd restore wrote state %s at index %s; the backup holds %s at %s", restoredHash, restoredIndex, hash, index)
	}
	waitSameState(t, restored)
	got := chaosRequestLog(t, restored[2], acct, 20)
	n := len(got)
	if n < answeredBefore || n > sentBefore {
		t.Fatalf("the restored request log has %d entries; want at least the %d chats answered before the backup started and at most the %d sent before it ended", n, answeredBefore, sentBefore)
	}
	if !slices.Equal(logIDs(got), logIDs(original[len(original)-n:])) {
		t.Fatalf("the restored request log is not the original's oldest %d entries", n)
	}
	status, id, err := backupChat(hc, restored[1], key)
	if err != nil || status != 200 || id == "" {
		t.Fatalf("a chat with the old key on the restored cluster: %d %q %v", status, id, err)
	}
	after := chaosRequestLog(t, restored[0], acct, 20)
	if len(after) != n+1 || after[0].ID != id || after[0].Billing != "payg" || after[0].Model != "chaos/echo" {
		t.Fatalf("after one more chat the restored log has %d entries (want %d), newest %+v (want %s, payg)", len(after), n+1, after[0], id)
	}
	waitSameState(t, restored)
}

func logIDs(entries []chaosLogEntry) []string {
	ids := make([]string, len(entries))
	for i, e := range entries {
		ids[i] = e.ID
	}
	return ids
}

// restoredCluster starts a new three-node cluster from a backup file: n1
// gets its ports and config from a first start (then killed and its data
// dir removed), is prepared with `zenmuxd restore` and started again; n2
// and n3 join it with empty data dirs. It returns the nodes and the index
// and state hash restore printed.
func restoredCluster(t *testing.T, file, head string) (nodes []*Node, index, hash string) {
	t.Helper()
	dir := t.TempDir()
	secret := writeFile(t, dir, "cluster.secret", []byte("test-cluster-secret-0123456789abcdef\n")) // clusterToken's
	tok := "test-admin-token-0123456789abcdef"
	token := writeFile(t, dir, "admin.token", []byte(tok+"\n"))
	config := func(cluster string) string {
		return fmt.Sprintf("%s\n[admin]\ntoken_file = %q\n[cluster]\n%ssecret_file = %q\n", head, token, cluster, secret)
	}
	n1 := StartNode(t, NodeOptions{ID: "n1", Token: tok, Extra: config("bootstrap = true\n")})
	n1.Kill()
	if err := os.RemoveAll(n1.Dir); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := runBinary(t, "restore", "-config", n1.Config, "-from", file)
	m := restoreLine.FindStringSubmatch(stdout)
	if code != 0 || m == nil {
		t.Fatalf("zenmuxd restore exited %d: %q %q", code, stdout, stderr)
	}
	n1.Start()
	// The restored node names its own addresses, not the backed-up node's.
	Expect(t, n1.AdminDo("GET", "/admin/v1/cluster", "").JSON(t), "leader_id", "n1", "nodes.0.id", "n1",
		"nodes.0.admin_addr", strings.TrimPrefix(n1.Admin, "http://"), "nodes.0.raft_addr", n1.RaftAddr, "nodes.1.id", "<missing>")
	nodes = []*Node{n1}
	_, join, _ := strings.Cut(n1.Admin, "://")
	for i := 2; i <= 3; i++ {
		nodes = append(nodes, StartNode(t, NodeOptions{ID: fmt.Sprintf("n%d", i), Token: tok, Extra: config(fmt.Sprintf("bootstrap = false\njoin = [%q]\n", join))}))
	}
	return nodes, m[1], m[2]
}

// TestBackupRefusesCorruptFile: a backup cut short or with a byte changed
// makes `zenmuxd restore` exit 1 with a one-line reason and leaves the
// data dir absent; a data dir with anything in it is refused; a backup
// call without the admin token is a 401 in the admin error shape, and
// `zenmuxd backup` with a wrong token exits 1 and writes no file.
func TestBackupRefusesCorruptFile(t *testing.T) {
	n := StartNode(t, NodeOptions{})
	wtAccount(t, n, "corrupt@example.com")
	dir := t.TempDir()
	r := Do(t, "GET", n.Admin+"/admin/v1/backup", "")
	if r.Status != 401 || string(r.Body) != `{"error":{"code":"unauthorized","message":"unauthorized: a valid admin token is required as Authorization: Bearer \u003ctoken\u003e"}}`+"\n" {
		t.Fatalf("GET /admin/v1/backup without a token: %d %s", r.Status, r.Body)
	}
	out := filepath.Join(dir, "b.backup")
	wrong := writeFile(t, dir, "wrong.token", []byte("not-the-admin-token-0123456789\n"))
	stdout, stderr, code := runBinary(t, "backup", "-admin", n.Admin, "-token-file", wrong, "-out", out)
	if code != 1 || stdout != "" || !strings.Contains(stderr, "401") || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("backup with a wrong token: exit %d, %q %q", code, stdout, stderr)
	}
	for _, p := range []string{out, out + ".tmp"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Fatalf("a failed backup left %s: %v", p, err)
		}
	}
	token := writeFile(t, dir, "admin.token", []byte(n.Token+"\n"))
	if stdout, stderr, code := runBinary(t, "backup", "-admin", n.Admin, "-token-file", token, "-out", out); code != 0 || !backupLine.MatchString(stdout) {
		t.Fatalf("backup: exit %d, %q %q", code, stdout, stderr)
	}
	good, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	flipped := slices.Clone(good)
	flipped[len(flipped)/2] ^= 1
	data := filepath.Join(dir, "data")
	ports := freePorts(t, 3)
	cfg := writeFile(t, dir, "zenmux.toml", fmt.Appendf(nil, "[node]\nid = \"n1\"\ndata_dir = %q\nlisten = \"127.0.0.1:%d\"\nadmin_listen = \"127.0.0.1:%d\"\nraft_listen = \"127.0.0.1:%d\"\n",
		data, ports[0], ports[1], ports[2]))
	for _, c := range []struct {
		name string
		file []byte
		want string
	}{
		{"cut short", good[:len(good)-10], "the file ends inside the trailer (cut short?)"},
		{"cut in the state", good[:len(good)/2], "the file ends inside the state (cut short?)"},
		{"a byte changed", flipped, "not a usable backup"},
		{"empty", nil, "too short for a zenmuxd backup"},
	} {
		bad := writeFile(t, dir, "bad.backup", c.file)
		stdout, stderr, code := runBinary(t, "restore", "-config", cfg, "-from", bad)
		if code != 1 || stdout != "" || !strings.HasPrefix(stderr, "zenmuxd restore: ") || !strings.Contains(stderr, c.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%s: exit %d, %q %q; want 1 and one line with %q", c.name, code, stdout, stderr, c.want)
		}
		if _, err := os.Stat(data); !os.IsNotExist(err) {
			t.Fatalf("%s: the refused restore left the data dir: %v", c.name, err)
		}
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, data, "keep", []byte("x"))
	stdout, stderr, code = runBinary(t, "restore", "-config", cfg, "-from", out)
	if code != 1 || !strings.Contains(stderr, "data dir is not empty") {
		t.Fatalf("restore into a non-empty data dir: exit %d, %q %q", code, stdout, stderr)
	}
	if entries, _ := os.ReadDir(data); len(entries) != 1 {
		t.Fatalf("the refused restore changed the data dir: %v", entries)
	}
}

// TestBackupOverTLS: with cluster TLS the admin listener is https;
// `zenmuxd backup` checks its certificate against -ca-file (and refuses
// it without, the system roots not knowing the cluster CA), and the file
// restores to the state hash it printed.
func TestBackupOverTLS(t *testing.T) {
	n := startClusterSpec(t, clusterSpec{nodes: 1, tls: true})[0]
	wtAccount(t, n, "tls-backup@example.com")
	dir := t.TempDir()
	token := writeFile(t, dir, "admin.token", []byte(n.Token+"\n"))
	out := filepath.Join(dir, "tls.backup")
	stdout, stderr, code := runBinary(t, "backup", "-admin", n.Admin, "-token-file", token, "-out", out)
	if code != 1 || !strings.Contains(stderr, "certificate") {
		t.Fatalf("backup over TLS without -ca-file: exit %d, %q %q", code, stdout, stderr)
	}
	ca := filepath.Join(filepath.Dir(n.Config), "ca.pem")
	stdout, stderr, code = runBinary(t, "backup", "-admin", n.Admin, "-token-file", token, "-ca-file", ca, "-out", out)
	m := backupLine.FindStringSubmatch(stdout)
	if code != 0 || m == nil {
		t.Fatalf("backup over TLS with -ca-file: exit %d, %q %q", code, stdout, stderr)
	}
	ports := freePorts(t, 3)
	cfg := writeFile(t, dir, "restore.toml", fmt.Appendf(nil, "[node]\nid = \"n1\"\ndata_dir = %q\nlisten = \"127.0.0.1:%d\"\nadmin_listen = \"127.0.0.1:%d\"\nraft_listen = \"127.0.0.1:%d\"\n",
		filepath.Join(dir, "data"), ports[0], ports[1], ports[2]))
	stdout, stderr, code = runBinary(t, "restore", "-config", cfg, "-from", out)
	r := restoreLine.FindStringSubmatch(stdout)
	if code != 0 || r == nil || r[1] != m[2] || r[2] != m[3] {
		t.Fatalf("restore: exit %d, %q %q; want index %s, hash %s", code, stdout, stderr, m[2], m[3])
	}
}
