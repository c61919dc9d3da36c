package e2e

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"zenmux/internal/testca"
)

// startAdminTLSNode starts zenmuxd with [admin] tls_* from opCA and, when
// clusterKeys is set, cluster TLS from the e2e cluster CA; tables is the
// TOML after [node] (its [admin] and [cluster] tables hold "{admin}" and
// "{cluster}" where the TLS keys go). StartNode cannot be used: it waits
// for /readyz trusting the cluster CA, and operators are shown opCA's
// certificate. The node's peer client offers the peers' ALPN protocol with
// a cluster certificate, as another node does.
func startAdminTLSNode(t *testing.T, id string, opCA *testca.CA, clusterTLS bool, tables string) *Node {
	t.Helper()
	dir := t.TempDir()
	n := &Node{t: t, ID: id, Dir: filepath.Join(dir, "data"), Config: filepath.Join(dir, "zenmux.toml"), logPath: filepath.Join(dir, "zenmuxd.log")}
	cert, key := opCA.Issue(t, "operator-"+id, nil)
	admin := fmt.Sprintf("tls_cert_file = %q\ntls_key_file = %q\n", testca.WriteFile(t, dir, "admin.pem", cert), testca.WriteFile(t, dir, "admin.key", key))
	clusterKeys := ""
	n.peer = opClient(opCA)
	if clusterTLS {
		ca := clusterCA(t)
		nc, nk := ca.Issue(t, id, nil)
		clusterKeys = fmt.Sprintf("tls_cert_file = %q\ntls_key_file = %q\ntls_ca_file = %q\n",
			testca.WriteFile(t, dir, "node.pem", nc), testca.WriteFile(t, dir, "node.key", nk), testca.WriteFile(t, dir, "ca.pem", ca.PEM))
		pair, err := tls.X509KeyPair(nc, nk)
		if err != nil {
			t.Fatal(err)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.ForceAttemptHTTP2 = false
		tr.TLSClientConfig = &tls.Config{RootCAs: ca.Pool, Certificates: []tls.Certificate{pair}, NextProtos: []string{"zenmux-peer"}}
		n.peer = &http.Client{Timeout: 10 * time.Second, Transport: tr}
	}
	tables = strings.NewReplacer("{admin}", admin, "{cluster}", clusterKeys).Replace(tables)
	ports := freePorts(t, 3)
	n.Proxy = fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	n.Admin = fmt.Sprintf("https://127.0.0.1:%d", ports[1])
	n.RaftAddr = fmt.Sprintf("127.0.0.1:%d", ports[2])
	cfg := fmt.Sprintf("[node]\nid = %q\ndata_dir = %q\nlisten = \"127.0.0.1:%d\"\nadmin_listen = \"127.0.0.1:%d\"\nraft_listen = %q\n%s",
		id, n.Dir, ports[0], ports[1], n.RaftAddr, tables)
	if err := os.WriteFile(n.Config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(n.logPath)
	if err != nil {
		t.Fatal(err)
	}
	n.cmd = exec.Command(binary, "-config", n.Config)
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	n.cmd.Env = append(os.Environ(), "ZENMUX_ADMIN_TOKEN=")
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.done = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) {
		n.exitErr = c.Wait()
		logf.Close()
		close(done)
	}(n.cmd, n.done)
	t.Cleanup(func() {
		n.Kill()
		if t.Failed() {
			if b, err := os.ReadFile(n.logPath); err == nil {
				t.Logf("%s log:\n%s", id, tail(string(b), 4000))
			}
		}
	})
	op := opClient(opCA)
	defer op.CloseIdleConnections()
	for deadline := time.Now().Add(30 * time.Second); ; {
		select {
		case <-n.done:
			t.Fatalf("%s exited before it was ready: %v", id, n.exitErr)
		default:
		}
		if resp, err := op.Get(n.Admin + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: /readyz did not answer 200 over https within 30 s", id)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return n
}

// opClient is an operator's https client (curl --cacert): it trusts opCA
// alone and shows no certificate.
func opClient(opCA *testca.CA) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: opCA.Pool}
	return &http.Client{Timeout: 10 * time.Second, Transport: tr}
}

// shownName is the common name of the certificate an https answer came
// over.
func shownName(t *testing.T, hc *http.Client, url string) string {
	t.Helper()
	resp, err := hc.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("GET %s: %d tls=%v", url, resp.StatusCode, resp.TLS != nil)
	}
	return resp.TLS.PeerCertificates[0].Subject.CommonName
}

// A single node with [admin] tls_* answers operators over https with the
// operator's certificate, verified against the operator's CA, and the
// admin API works over it; plain http gets nothing.
func TestAdminTLSSingleNode(t *testing.T) {
	opCA := testca.New(t, "operator CA")
	tok := "admin-tls-token-0123456789abcdef"
	tokFile := testca.WriteFile(t, t.TempDir(), "admin.token", []byte(tok+"\n"))
	n := startAdminTLSNode(t, "n1", opCA, false, fmt.Sprintf("[admin]\ntoken_file = %q\n{admin}", tokFile))
	op := opClient(opCA)
	defer op.CloseIdleConnections()
	if got := shownName(t, op, n.Admin+"/readyz"); got != "operator-n1" {
		t.Fatalf("shown %q, want operator-n1", got)
	}
	r := doWith(t, op, "POST", n.Admin+"/admin/v1/accounts", `{"email":"tls@example.com","name":"T"}`, "Authorization: Bearer "+tok)
	if r.Status != 201 {
		t.Fatalf("create an account over https: %d %s", r.Status, r.Body)
	}
	plain := &http.Client{Timeout: 3 * time.Second}
	if resp, err := plain.Get(strings.Replace(n.Admin, "https://", "http://", 1) + "/readyz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain http was served on the admin TLS listener")
		}
	}
}

// With [admin] tls_* and cluster TLS on every node, operators are shown
// the operator's certificate while peers still join, forward writes to
// the leader and replicate over the same listener with the cluster's: a
// write through each follower is read on every node, and the state hashes
// (read as a peer) agree.
func TestAdminTLSCluster(t *testing.T) {
	opCA := testca.New(t, "operator CA")
	dir := t.TempDir()
	tok := "admin-tls-token-0123456789abcdef"
	tokFile := testca.WriteFile(t, dir, "admin.token", []byte(tok+"\n"))
	secret := testca.WriteFile(t, dir, "cluster.secret", []byte("test-cluster-secret-0123456789abcdef\n"))
	tables := func(cluster string) string {
		return fmt.Sprintf("[admin]\ntoken_file = %q\n{admin}[cluster]\nsecret_file = %q\n%s{cluster}", tokFile, secret, cluster)
	}
	nodes := []*Node{startAdminTLSNode(t, "n1", opCA, true, tables("bootstrap = true\n"))}
	join := strings.TrimPrefix(nodes[0].Admin, "https://")
	for _, id := range []string{"n2", "n3"} {
		nodes = append(nodes, startAdminTLSNode(t, id, opCA, true, tables(fmt.Sprintf("bootstrap = false\njoin = [%q]\n", join))))
	}
	op := opClient(opCA)
	defer op.CloseIdleConnections()
	for _, n := range nodes {
		if got := shownName(t, op, n.Admin+"/readyz"); got != "operator-"+n.ID {
			t.Fatalf("%s shows operators %q, want operator-%s", n.ID, got, n.ID)
		}
		if got := shownName(t, n.peer, n.Admin+"/readyz"); got != n.ID {
			t.Fatalf("%s shows peers %q, want its cluster certificate %s", n.ID, got, n.ID)
		}
	}
	r := doWith(t, op, "GET", nodes[0].Admin+"/admin/v1/cluster", "", "Authorization: Bearer "+tok)
	if r.Status != 200 || strings.Count(string(r.Body), `"state":"follower"`) != 2 || !strings.Contains(string(r.Body), `"state":"leader"`) {
		t.Fatalf("cluster: %d %s, want a leader and two followers", r.Status, r.Body)
	}
	var ids []string
	for _, n := range nodes[1:] {
		r := doWith(t, op, "POST", n.Admin+"/admin/v1/accounts", fmt.Sprintf(`{"email":"%s@example.com","name":"T"}`, n.ID), "Authorization: Bearer "+tok)
		if r.Status != 201 {
			t.Fatalf("create an account through %s: %d %s", n.ID, r.Status, r.Body)
		}
		ids = append(ids, Get(r.JSON(t), "id"))
	}
	for _, n := range nodes {
		for _, id := range ids {
			if r := doWith(t, op, "GET", n.Admin+"/admin/v1/accounts/"+id, "", "Authorization: Bearer "+tok); r.Status != 200 {
				t.Fatalf("%s reads account %s: %d %s", n.ID, id, r.Status, r.Body)
			}
		}
	}
	waitSameState(t, nodes)
}
