package admin

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"zenmux/internal/apierr"
)

// Backup is one consistent copy of the replicated state, pinned when it
// was opened (after a read barrier) until Close. node gives raftfsm's;
// the file format is raftfsm's too (raftfsm/DESIGN.md, "Backups").
type Backup interface {
	// Index is the Raft index the copy is at.
	Index() uint64
	// WriteTo writes the backup file, streaming the state.
	WriteTo(w io.Writer) (int64, error)
	// Close frees what the copy pins.
	Close() error
}

// backupWindow is how long one write of a backup may take: the response
// streams for as long as the state takes to read, and the deadline moves
// on while it does; a client that stops reading is cut off after it.
const backupWindow = 30 * time.Second

// backup serves GET /admin/v1/backup: the backup file, streamed with
// chunked transfer encoding. Errors before the first byte (no leader for
// the read barrier, a wrong method) answer in the admin error shape; a
// failure once the file streams cuts it short, which the file's trailing
// checksum reveals (zenmuxd backup refuses it).
func (s *Server) backup(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() {
		s.errors.Add(1)
		writeError(ctx, methodNotAllowed(ctx, []string{"GET"}))
		return
	}
	b, err := s.opts.Backup()
	if err != nil {
		s.errors.Add(1)
		writeError(ctx, apierr.NotNow(err))
		return
	}
	ctx.SetContentType("application/octet-stream")
	ctx.Response.Header.Set("X-Zenmux-Backup-Index", strconv.FormatUint(b.Index(), 10))
	ctx.Response.Header.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="zenmux-%d.backup"`, b.Index()))
	dw := &deadlineWriter{ctx: ctx}
	dw.extend()
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		defer b.Close()
		dw.w = w
		if _, err := b.WriteTo(dw); err == nil {
			w.Flush()
		}
	})
}

// deadlineWriter moves the connection's write deadline on, at most once a
// second, while the backup makes progress.
type deadlineWriter struct {
	ctx  *fasthttp.RequestCtx
	w    io.Writer
	last time.Time
}

func (d *deadlineWriter) extend() {
	d.last = time.Now()
	_ = d.ctx.SetWriteDeadline(d.last.Add(backupWindow))
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	if time.Since(d.last) >= time.Second {
		d.extend()
	}
	return d.w.Write(p)
}
