package node

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"zenmux/admin"
	"zenmux/cluster"
	"zenmux/config"
	"zenmux/raftfsm"
)

// backupOpener is GET /admin/v1/backup's source: the replica's state
// after a read barrier.
func backupOpener(rep *cluster.Replica) func() (admin.Backup, error) {
	return func() (admin.Backup, error) {
		b, err := rep.OpenBackup()
		if err != nil {
			return nil, err
		}
		return b, nil
	}
}

// BackupCommand runs `zenmuxd backup`: it fetches GET /admin/v1/backup
// from a running node (any node: a follower serves it after its read
// barrier) into FILE.tmp, checking the file as it arrives (raftfsm's
// VerifyBackup: magic, version, checksum, state hash), syncs it and
// renames it to FILE, so FILE is either a whole, verified backup or not
// there. It prints one line (index, state hash, bytes) and returns the
// exit code: 0, 1 on any failure (one line on stderr), 2 for bad
// arguments.
func BackupCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("zenmuxd backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	adminURL := fs.String("admin", "", "a node's admin listener: https://host:8081 (or http://, or host:port for http)")
	tokenFile := fs.String("token-file", "", "file holding the admin token (default: $ZENMUX_ADMIN_TOKEN)")
	caFile := fs.String("ca-file", "", "CA certificate (PEM) the admin listener's certificate is checked against (default: the system's)")
	certFile := fs.String("cert-file", "", "client certificate (PEM) to show the admin listener, with -key-file")
	keyFile := fs.String("key-file", "", "client key (PEM) of -cert-file")
	out := fs.String("out", "", "backup file to write (written to FILE.tmp, then renamed)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 || *adminURL == "" || *out == "" || (*certFile == "") != (*keyFile == "") {
		fmt.Fprintln(stderr, "usage: zenmuxd backup -admin URL -token-file FILE [-ca-file CA -cert-file CERT -key-file KEY] -out FILE")
		return 2
	}
	info, err := backup(*adminURL, *tokenFile, *caFile, *certFile, *keyFile, *out)
	if err != nil {
		fmt.Fprintln(stderr, "zenmuxd backup:", err)
		return 1
	}
	fmt.Fprintf(stdout, "backup %s: index %d, state hash %x, %d bytes, from node %s at %s\n",
		*out, info.Index, info.Hash, info.Bytes, info.Node, info.Created.Format(time.RFC3339))
	return 0
}

func backup(adminURL, tokenFile, caFile, certFile, keyFile, out string) (info raftfsm.BackupInfo, err error) {
	token := strings.TrimSpace(os.Getenv("ZENMUX_ADMIN_TOKEN"))
	if tokenFile != "" {
		t, err := readSecretFile(tokenFile, "admin token")
		if err != nil {
			return info, err
		}
		token = string(t)
	}
	if token == "" {
		return info, errors.New("no admin token: give -token-file or set ZENMUX_ADMIN_TOKEN")
	}
	tr := &http.Transport{ResponseHeaderTimeout: time.Minute, TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12}}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return info, err
		}
		tr.TLSClientConfig.RootCAs = x509.NewCertPool()
		if !tr.TLSClientConfig.RootCAs.AppendCertsFromPEM(pem) {
			return info, fmt.Errorf("%s holds no PEM certificate", caFile)
		}
	}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return info, err
		}
		tr.TLSClientConfig.Certificates = []tls.Certificate{pair}
	}
	defer tr.CloseIdleConnections()
	base := adminURL
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	req, err := http.NewRequest("GET", strings.TrimSuffix(base, "/")+"/admin/v1/backup", nil)
	if err != nil {
		return info, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return info, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return info, fmt.Errorf("%s answered %s: %s", req.URL.Redacted(), resp.Status, strings.TrimSpace(string(body)))
	}
	tmp := out + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return info, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	// VerifyBackup reads to the end of the file, so every byte of the
	// answer passes through the tee into the file.
	body := newIdleReader(resp.Body, backupIdle)
	defer body.stop()
	if info, err = raftfsm.VerifyBackup(io.TeeReader(body, f)); err != nil {
		if body.fired.Load() {
			err = fmt.Errorf("the node sent nothing for %s", backupIdle)
		}
		return info, err
	}
	if err = f.Sync(); err != nil {
		return info, err
	}
	if err = f.Close(); err != nil {
		return info, err
	}
	if err = os.Rename(tmp, out); err != nil {
		return info, err
	}
	if d, derr := os.Open(filepath.Dir(out)); derr == nil {
		err = d.Sync()
		d.Close()
	}
	return info, err
}

// backupIdle is how long the backup's body may send nothing before the
// command gives up (the node cuts off a reader that stalls for 30 s).
const backupIdle = time.Minute

// idleReader closes rc when no read has returned for idle, so a node
// that stops sending mid-file fails the backup instead of hanging it.
type idleReader struct {
	rc    io.ReadCloser
	idle  time.Duration
	timer *time.Timer
	fired atomic.Bool // the timer closed rc
}

func newIdleReader(rc io.ReadCloser, idle time.Duration) *idleReader {
	r := &idleReader{rc: rc, idle: idle}
	r.timer = time.AfterFunc(idle, func() { r.fired.Store(true); rc.Close() })
	return r
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	r.timer.Reset(r.idle)
	return n, err
}

func (r *idleReader) stop() { r.timer.Stop() }

// RestoreCommand runs `zenmuxd restore -config FILE -from BACKUP`: it
// prepares the config's node.data_dir, which must be absent or empty, as
// the first node of a new cluster holding exactly the backup's state
// (raftfsm.RestoreBackup; the file is verified whole first). Started with
// that config, the node is a one-voter cluster; the others join it with
// empty data dirs and catch up from a snapshot. It prints what it
// restored and returns the exit code: 0, 1 on any failure (one line on
// stderr; the data dir is left as it was), 2 for bad arguments.
func RestoreCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("zenmuxd restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "the restored node's TOML config (its node.data_dir must be absent or empty)")
	from := fs.String("from", "", "backup file written by zenmuxd backup")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 || *path == "" || *from == "" {
		fmt.Fprintln(stderr, "usage: zenmuxd restore -config FILE -from BACKUP")
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, "zenmuxd restore:", strings.ReplaceAll(err.Error(), "\n", "; "))
		return 1
	}
	info, err := raftfsm.RestoreBackup(*from, cfg.Node.DataDir, cfg.Node.ID, cfg.Node.RaftAddr())
	if err != nil {
		fmt.Fprintln(stderr, "zenmuxd restore:", err)
		return 1
	}
	recoded := ""
	if info.Restored != info.Hash {
		recoded = fmt.Sprintf(" (recoded to this build's record format: state hash %x)", info.Restored)
	}
	fmt.Fprintf(stdout, "restored index %d, state hash %x, %d records%s (from node %s at %s) into %s as node %s; start it with this config and [cluster] bootstrap = true, then let the others join\n",
		info.Index, info.Hash, info.Records, recoded, info.Node, info.Created.Format(time.RFC3339), cfg.Node.DataDir, cfg.Node.ID)
	return 0
}
