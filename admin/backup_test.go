package admin

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// fakeBackup streams n bytes of body and records its Close.
type fakeBackup struct {
	body   []byte
	closed atomic.Bool
}

func (f *fakeBackup) Index() uint64 { return 42 }
func (f *fakeBackup) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(f.body)
	return int64(n), err
}
func (f *fakeBackup) Close() error { f.closed.Store(true); return nil }

// notNowErr is a store error that says it means "not now".
type notNowErr struct{}

func (notNowErr) Error() string     { return "no leader" }
func (notNowErr) Unavailable() bool { return true }

// serveAdmin runs s on an in-memory listener and returns a client for it.
func serveAdmin(t *testing.T, s *Server) *fasthttp.Client {
	t.Helper()
	ln := fasthttputil.NewInmemoryListener()
	srv := &fasthttp.Server{Handler: s.Handler, WriteTimeout: time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { ln.Close() })
	return &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}
}

func adminCall(t *testing.T, c *fasthttp.Client, method, token string) (int, string, []byte) {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://admin/admin/v1/backup")
	req.Header.SetMethod(method)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if err := c.DoTimeout(req, resp, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode(), string(resp.Header.Peek("X-Zenmux-Backup-Index")), append([]byte(nil), resp.Body()...)
}

// GET /admin/v1/backup streams the backup (4 MiB here, past any single
// buffer) and closes it; other methods, a missing token and a store that
// cannot make a read barrier answer in the admin error shape.
func TestBackupEndpoint(t *testing.T) {
	const token = "0123456789abcdef"
	fb := &fakeBackup{body: bytes.Repeat([]byte("zenmux"), 700_000)}
	opened := 0
	var openErr error
	s := New(nilStore{}, Options{Token: []byte(token), Backup: func() (Backup, error) {
		opened++
		if openErr != nil {
			return nil, openErr
		}
		return fb, nil
	}})
	c := serveAdmin(t, s)
	status, index, body := adminCall(t, c, "GET", token)
	if status != 200 || index != "42" || !bytes.Equal(body, fb.body) {
		t.Fatalf("GET: %d, index %q, %d bytes (want 200, 42, %d bytes)", status, index, len(body), len(fb.body))
	}
	for i := 0; i < 100 && !fb.closed.Load(); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if !fb.closed.Load() {
		t.Fatal("the backup was not closed after it streamed")
	}
	for _, tc := range []struct {
		method, token string
		err           error
		status        int
		want          string
	}{
		{"GET", "", nil, 401, `{"error":{"code":"unauthorized","message":"unauthorized: a valid admin token is required as Authorization: Bearer \u003ctoken\u003e"}}`},
		{"GET", "wrong-token-0123456789", nil, 401, `{"error":{"code":"unauthorized",`},
		{"POST", token, nil, 405, `{"error":{"code":"method_not_allowed",`},
		{"GET", token, notNowErr{}, 503, `{"error":{"code":"unavailable","message":"no leader"}}`},
		{"GET", token, errors.New("disk on fire"), 503, `{"error":{"code":"unavailable","message":"unavailable: disk on fire"}}`},
	} {
		openErr = tc.err
		before := opened
		status, _, body := adminCall(t, c, tc.method, tc.token)
		if status != tc.status || !strings.HasPrefix(string(body), tc.want) {
			t.Errorf("%s with token %q, open error %v: %d %s, want %d %s", tc.method, tc.token, tc.err, status, body, tc.status, tc.want)
		}
		if wantOpen := tc.status == 503; (opened > before) != wantOpen {
			t.Errorf("%s with token %q: backup opened %d times", tc.method, tc.token, opened-before)
		}
	}
	plain := New(nilStore{}, Options{Token: []byte(token)})
	if status, _, body := adminCall(t, serveAdmin(t, plain), "GET", token); status != 404 || !strings.Contains(string(body), `"not_found"`) {
		t.Errorf("without a Backup: %d %s, want 404 not_found", status, body)
	}
}
