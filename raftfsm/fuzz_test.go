package raftfsm

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"
	"github.com/hashicorp/raft"

	"zenmux/ledger"
)

// The fuzz targets below feed this package the bytes that reach a node from
// outside: a raft log entry read back from disk (FuzzDecodeLog,
// FuzzLogRoundTrip), the snapshot stream a leader sends a follower
// (FuzzRestore), and what a peer says during the transport's
// cluster-secret handshake (FuzzServerHandshake, FuzzClientHandshake).
// None of them may crash the node, and what a node refuses must leave it
// as it was. Run one at a time, e.g.
//
//	go test ./raftfsm -run '^$' -fuzz '^FuzzRestore$' -fuzztime 3m -parallel 1

// FuzzDecodeLog feeds arbitrary bytes to decodeLog, as a corrupt or
// foreign log database would. Refusals wrap errCorruptLog; an entry it
// accepts re-encodes to bytes that decode to the same entry, and does not
// share memory with the bytes it was decoded from (GetLog releases them).
func FuzzDecodeLog(f *testing.F) {
	for i := uint64(1); i <= 12; i++ {
		f.Add(appendLog(nil, testLog(i)))
	}
	f.Add(appendLog(nil, &raft.Log{}))
	f.Add(appendLog(nil, &raft.Log{Index: math64, Term: math64, Type: 0xff, Data: []byte("d"), Extensions: []byte("e"),
		AppendedAt: time.Unix(0, -1)}))
	f.Add([]byte{})
	f.Add([]byte{logEncodingV1})
	f.Add([]byte{2, 1, 1, 0, 0, 0, 0})
	f.Add(binary.AppendUvarint([]byte{1, 1, 1, 0}, 1<<63))
	f.Fuzz(func(t *testing.T, buf []byte) {
		var got raft.Log
		if err := decodeLog(buf, &got); err != nil {
			if !errors.Is(err, errCorruptLog) {
				t.Fatalf("decodeLog refused with %v, want errCorruptLog", err)
			}
			return
		}
		enc := appendLog(nil, &got)
		if len(enc) > maxEncodedLogLen(&got) {
			t.Fatalf("encoding is %d bytes, maxEncodedLogLen says at most %d", len(enc), maxEncodedLogLen(&got))
		}
		var again raft.Log
		if err := decodeLog(enc, &again); err != nil {
			t.Fatalf("re-encoded entry does not decode: %v", err)
		}
		if !logsEqual(&got, &again) {
			t.Fatalf("re-encoded entry differs: %+v, then %+v", got, again)
		}
		// Overwrite the source: the decoded entry must not change.
		want := raft.Log{Data: bytes.Clone(got.Data), Extensions: bytes.Clone(got.Extensions)}
		for i := range buf {
			buf[i] ^= 0xff
		}
		if !bytes.Equal(got.Data, want.Data) || !bytes.Equal(got.Extensions, want.Extensions) {
			t.Fatal("decoded entry aliases the bytes it was decoded from")
		}
	})
}

const math64 = ^uint64(0)

// FuzzLogRoundTrip encodes raft.Log values built from fuzz inputs and
// checks that decoding gives back every field. AppendedAt is built from
// Unix nanoseconds, the only times raft writes (time.Now); the one
// instant the encoding cannot tell apart is the Unix epoch itself, which
// it stores as 0 and documents as "the zero time.Time".
func FuzzLogRoundTrip(f *testing.F) {
	for i := uint64(1); i <= 6; i++ {
		l := testLog(i)
		f.Add(l.Index, l.Term, byte(l.Type), l.Data, l.Extensions, l.AppendedAt.UnixNano(), l.AppendedAt.IsZero())
	}
	f.Add(math64, math64, byte(0xff), []byte{}, []byte{}, int64(-1), false)
	f.Add(uint64(0), uint64(0), byte(0), []byte(nil), []byte(nil), int64(0), true)
	f.Add(uint64(1)<<63, uint64(1), byte(raft.LogConfiguration), bytes.Repeat([]byte{0x80}, 300), []byte{0}, int64(-1)<<63, false)
	f.Fuzz(func(t *testing.T, index, term uint64, typ byte, data, ext []byte, nanos int64, zeroTime bool) {
		in := raft.Log{Index: index, Term: term, Type: raft.LogType(typ), Data: data, Extensions: ext}
		if !zeroTime {
			in.AppendedAt = time.Unix(0, nanos)
		}
		enc := appendLog(nil, &in)
		if len(enc) > maxEncodedLogLen(&in) {
			t.Fatalf("encoding is %d bytes, maxEncodedLogLen says at most %d", len(enc), maxEncodedLogLen(&in))
		}
		// appendLog appends: a prefix in dst stays as it was.
		if prefixed := appendLog([]byte("pre"), &in); !bytes.Equal(prefixed, append([]byte("pre"), enc...)) {
			t.Fatal("appendLog onto a prefix differs from appendLog onto nil")
		}
		var out raft.Log
		if err := decodeLog(enc, &out); err != nil {
			t.Fatalf("decodeLog(appendLog(%+v)): %v", in, err)
		}
		want := in
		if !in.AppendedAt.IsZero() && in.AppendedAt.UnixNano() == 0 {
			want.AppendedAt = time.Time{} // the epoch is stored as 0
		}
		if !logsEqual(&out, &want) {
			t.Fatalf("round trip of %+v gave %+v", want, out)
		}
		// A strict prefix is truncated: refused, never a panic. (Every
		// one near either end, and the middle: all of them would make a
		// long entry cost the fuzzer quadratic time.)
		for n := range len(enc) {
			if n >= 32 && n < len(enc)-32 && n != len(enc)/2 {
				continue
			}
			if err := decodeLog(enc[:n], &out); !errors.Is(err, errCorruptLog) {
				t.Fatalf("decode of %d of %d bytes: err = %v, want errCorruptLog", n, len(enc), err)
			}
		}
	})
}

// memFSM is an FSM over a Pebble DB in memory, with the state database's
// production options (no WAL): a restore flushes, and on disk every
// flush would cost the fuzzer an fsync.
func memFSM(tb testing.TB) *FSM {
	tb.Helper()
	opts := pebbleOptions(nil, 1, true)
	opts.DisableWAL = true
	opts.FS = vfs.NewMem()
	db, err := pebble.Open("state", opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	fsm, err := NewFSM(db)
	if err != nil {
		tb.Fatal(err)
	}
	return fsm
}

// applyAll applies cmds as consecutive raft entries after the FSM's
// applied index, stamped t0, and checkpoints.
func applyAll(tb testing.TB, fsm *FSM, cmds ...ledger.Command) {
	tb.Helper()
	logs := make([]*raft.Log, len(cmds))
	for i, c := range cmds {
		data, err := ledger.Encode(c, t0)
		if err != nil {
			tb.Fatal(err)
		}
		logs[i] = &raft.Log{Index: fsm.AppliedIndex() + uint64(i) + 1, Type: raft.LogCommand, Data: data}
	}
	for i, r := range fsm.ApplyBatch(logs) {
		if res, ok := r.(ledger.Result); ok && res.Err != nil {
			tb.Fatalf("%T: %v", cmds[i], res.Err)
		}
	}
	fsm.Checkpoint()
}

// stateStream renders the FSM's state as the frames a leader sends.
func stateStream(tb testing.TB, fsm *FSM) []byte {
	tb.Helper()
	snap := fsm.db.NewSnapshot()
	defer snap.Close()
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	if err := writeState(w, snap); err != nil {
		tb.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// frame is one writeFrame record, for building streams by hand.
func frame(k, v string) []byte {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	if err := writeFrame(w, []byte(k), []byte(v)); err != nil {
		panic(err)
	}
	w.Flush()
	return buf.Bytes()
}

// ledgerState fills fsm with a small ledger: seeded plans and models, an
// account with a key, money, charges (request log, dedupe records, daily
// totals) and the applied index.
func ledgerState(tb testing.TB, fsm *FSM) {
	tb.Helper()
	var charges []ledger.Charge
	for i := range 5 {
		charges = append(charges, ledger.Charge{ReqID: fmt.Sprint("r", i), AccountID: "a1", KeyID: "k1", Model: ledger.EchoModelID,
			Billing: ledger.BillingSubscription, AdmittedAt: t0, InputTokens: 1000, Status: "ok"})
	}
	applyAll(tb, fsm,
		&ledger.Seed{NanoUSDPerFlow: ledger.DefaultNanoUSDPerFlow, Plans: ledger.DefaultPlans(), Models: ledger.DefaultModels(),
			DedupeDays: 7, RequestLogDays: 30, LogFormat: ledger.LogFormatCurrent},
		&ledger.CreateAccount{ID: "a1", Email: "a1@x.io"},
		&ledger.CreateKey{AccountID: "a1", KeyID: "k1", Kind: ledger.KindSubscription, Hash: ledger.HashSecret("s"), Last4: "abcd"},
		&ledger.TopUp{Idem: ledger.Idem{IdemKey: "t1", Fingerprint: "f"}, AccountID: "a1", MicroUSD: 10_000},
		&ledger.ChargeBatch{Charges: charges},
	)
}

// FuzzRestore feeds arbitrary streams to FSM.Restore, as a leader (or a
// snapshot file left on disk) could send them. A stream Restore refuses
// returns an error and leaves the FSM as it was: same ledger, same applied
// index, same state hash. A stream it accepts is state this node would
// send on: rendered again and restored, it gives the same state hash.
// Frame lengths past maxFrame are refused before anything is allocated
// (TestRestoreRefusesAnOversizedFrameUnallocated).
func FuzzRestore(f *testing.F) {
	fsm := memFSM(f)
	ledgerState(f, fsm)
	base := stateStream(f, fsm)
	baseHash, baseIdx, err := fsm.StateHash()
	if err != nil {
		f.Fatal(err)
	}
	// Seeds stay small: the fuzzer minimizes every input that reaches new
	// code, and minimizing one of kilobytes took it a minute each time.
	// So the base stream is no seed, but each small record in it is.
	var records [][]byte
	r := bufio.NewReader(bytes.NewReader(base))
	if _, err := readStreamHeader(r); err != nil {
		f.Fatal(err)
	}
	for {
		k, v, err := readFrame(r)
		if err == io.EOF {
			break
		}
		if err != nil {
			f.Fatal(err)
		}
		if fr := frame(string(k), string(v)); len(fr) <= 300 {
			records = append(records, fr)
			f.Add(fr)
		}
	}
	two := append(bytes.Clone(records[0]), records[len(records)-1]...)
	for _, s := range [][]byte{
		{},
		two,
		two[:len(two)-1],
		append(frame("", streamMagic+"\x02"), two...),
		append(frame("", streamMagic+"\x03"), two...),
		frame("s/nosuchkind/x", "{}"),
		frame("s/acct/a1", "{not json"),
		frame(string(appliedKey), "short"),
		frame("l/\x00\x00\x00\x00\x00\x00\x00\x01", ""),
		binary.AppendUvarint(nil, maxFrame+1),
		binary.AppendUvarint([]byte{2, 's', '/'}, 1<<63),
		{0xff, 0xff},
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		led := fsm.Ledger()
		hash, applied, err := fsm.StateHash()
		if err != nil {
			t.Fatal(err)
		}
		if err := fsm.Restore(io.NopCloser(bytes.NewReader(stream))); err != nil {
			h, i, herr := fsm.StateHash()
			if herr != nil {
				t.Fatal(herr)
			}
			if h != hash || i != applied || fsm.AppliedIndex() != applied || fsm.Ledger() != led {
				t.Fatalf("refused restore (%v) changed the state: %x@%d → %x@%d", err, hash, applied, h, i)
			}
			return
		}
		h, i, err := fsm.StateHash()
		if err != nil {
			t.Fatal(err)
		}
		if i != fsm.AppliedIndex() {
			t.Fatalf("restored applied index %d, FSM says %d", i, fsm.AppliedIndex())
		}
		if err := fsm.Restore(io.NopCloser(bytes.NewReader(stateStream(t, fsm)))); err != nil {
			t.Fatalf("state a restore accepted, sent on, is refused: %v", err)
		}
		if h2, i2, _ := fsm.StateHash(); h2 != h || i2 != i {
			t.Fatalf("state sent on restores to %x@%d, not %x@%d", h2, i2, h, i)
		}
		// Back to the ledger the next input starts from.
		if err := fsm.Restore(io.NopCloser(bytes.NewReader(base))); err != nil {
			t.Fatal(err)
		}
		if h, i, _ := fsm.StateHash(); h != baseHash || i != baseIdx {
			t.Fatal("restoring the base stream did not give the base state")
		}
	})
}

// What broke: Restore committed a snapshot's records (deleting the old
// state) and only then loaded the ledger from them, panicking when it
// could not. A well-framed stream with one record the ledger cannot load
// (an unknown kind, a value that is not JSON, an applied index that is
// not 8 bytes) crashed the follower after flushing that state to disk,
// where NewFSM could not load it at the next start either. FuzzRestore
// found it from its seeds. Now the ledger is loaded from the batch before
// the commit, and such a stream is refused with the old state intact.
func TestRestoreRefusesStateTheLedgerCannotLoad(t *testing.T) {
	fsm := memFSM(t)
	ledgerState(t, fsm)
	base := stateStream(t, fsm)
	hash, applied, _ := fsm.StateHash()
	for name, extra := range map[string][]byte{
		"unknown kind":       frame("s/nosuchkind/x", "{}"),
		"not JSON":           frame("s/acct/a1", "{not json"),
		"short index":        frame(string(appliedKey), "short"),
		"bad retried charge": frame("s/rt/x", ""),
	} {
		stream := append(bytes.Clone(base), extra...)
		if err := fsm.Restore(io.NopCloser(bytes.NewReader(stream))); err == nil {
			t.Fatalf("%s: restored", name)
		}
		if h, i, _ := fsm.StateHash(); h != hash || i != applied {
			t.Fatalf("%s: the refused restore changed the state", name)
		}
		if _, err := NewFSM(fsm.db); err != nil {
			t.Fatalf("%s: the state no longer loads: %v", name, err)
		}
	}
	if _, err := fsm.Ledger().Account("a1", t0); err != nil {
		t.Fatalf("the ledger lost a1: %v", err)
	}
}

// A frame length past maxFrame is refused before its bytes are
// allocated: a four-byte stream must not cost the node 64 MiB, nor a
// length near 2^64 crash it.
func TestRestoreRefusesAnOversizedFrameUnallocated(t *testing.T) {
	fsm := memFSM(t)
	ledgerState(t, fsm)
	hash, _, _ := fsm.StateHash()
	for _, stream := range [][]byte{
		binary.AppendUvarint(nil, maxFrame+1),
		binary.AppendUvarint(nil, math64),
		binary.AppendUvarint(frame("s/acct/a1", "")[:len(frame("s/acct/a1", ""))-1], maxFrame+1),
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err := fsm.Restore(io.NopCloser(bytes.NewReader(stream)))
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Fatalf("stream %x restored", stream)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 8<<20 {
			t.Fatalf("refusing stream %x allocated %d bytes", stream, n)
		}
	}
	if h, _, _ := fsm.StateHash(); h != hash {
		t.Fatal("refused restores changed the state")
	}
}

// testMAC is the handshake's HMAC, computed here from the wire format in
// transport.go rather than by the code under test.
func testMAC(label string, nonce []byte) []byte {
	m := hmac.New(sha256.New, testSecret)
	m.Write([]byte(label))
	m.Write(nonce)
	return m.Sum(nil)
}

// deadlineConn records the deadlines serverConn sets on a connection and
// caps them at limit from now, so a fuzzer need not wait
// handshakeTimeout for every silent peer.
type deadlineConn struct {
	net.Conn
	limit    time.Duration
	deadline atomic.Bool // a deadline is set
	naked    atomic.Bool // a read or write happened with none set
}

func (c *deadlineConn) SetDeadline(t time.Time) error {
	c.deadline.Store(!t.IsZero())
	if latest := time.Now().Add(c.limit); !t.IsZero() && t.After(latest) {
		t = latest
	}
	return c.Conn.SetDeadline(t)
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	if !c.deadline.Load() {
		c.naked.Store(true)
	}
	return c.Conn.Read(p)
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	if !c.deadline.Load() {
		c.naked.Store(true)
	}
	return c.Conn.Write(p)
}

// fakeClient plays a client against serverConn on conn. Honest, it
// answers the server's nonce with HMAC(secret, "client" ‖ nonceS) ‖ nonceC
// XORed with mask's first 64 bytes, checks the server's proof, then sends
// the rest of mask as traffic. Otherwise it sends mask as is. Then it hangs
// up, or waits, silent, for the server to. It reports whether the server
// proved itself, and an error if the proof was wrong.
func fakeClient(conn net.Conn, mask []byte, honest, hangUp bool) (proved bool, err error) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	nonceS := make([]byte, 32)
	if _, err := io.ReadFull(conn, nonceS); err != nil {
		return false, fmt.Errorf("read the server's nonce: %w", err)
	}
	if !honest {
		_, _ = conn.Write(mask) // fails once the server has read 64 bytes and hung up
	} else {
		reply := append(testMAC("client", nonceS), bytes.Repeat([]byte{0x5a}, 32)...)
		for i := range min(len(mask), len(reply)) {
			reply[i] ^= mask[i]
		}
		if _, err := conn.Write(reply); err != nil {
			return false, nil
		}
		proof := make([]byte, 32)
		if _, err := io.ReadFull(conn, proof); err != nil {
			return false, nil // refused: the server hung up
		}
		if !hmac.Equal(proof, testMAC("server", reply[32:])) {
			return false, fmt.Errorf("server proof %x is wrong", proof)
		}
		proved = true
		if len(mask) > 64 {
			_, _ = conn.Write(mask[64:])
		}
	}
	if !hangUp {
		_, _ = io.Copy(io.Discard, conn)
	}
	return proved, nil
}

// FuzzServerHandshake plays arbitrary clients against serverConn, the
// accepting side of the cluster-secret handshake. It authenticates only a
// client whose first 32 bytes are the right HMAC for its nonce, and then
// proves itself; everything else is refused with an error and the
// connection closed. Every read and write runs under a deadline: a client
// that goes silent is dropped when it passes, never waited on past it.
func FuzzServerHandshake(f *testing.F) {
	f.Add([]byte{}, true, true)                                 // the honest client
	f.Add(append(make([]byte, 64), "raft rpc"...), true, false) // and then traffic
	f.Add([]byte{1}, true, true)                                // one bit of the HMAC off
	f.Add(append(make([]byte, 32), 0xff), true, true)           // another nonce: still honest
	f.Add(make([]byte, 64), false, true)                        // zeros
	f.Add([]byte("short"), false, true)                         // truncated, then hangs up
	f.Add([]byte("short"), false, false)                        // truncated, then silent
	f.Add([]byte{}, false, false)                               // says nothing at all
	s := &authStream{secret: testSecret}
	f.Fuzz(func(t *testing.T, mask []byte, honest, hangUp bool) {
		srv, cli := net.Pipe()
		// Only a short, silent client keeps the server waiting: cap its
		// deadline so the fuzzer moves on.
		waits := !honest && !hangUp && len(mask) < 64
		raw := &deadlineConn{Conn: srv, limit: handshakeTimeout}
		if waits {
			raw.limit = 20 * time.Millisecond
		}
		wantOK := honest && bytes.Equal(mask[:min(len(mask), 32)], make([]byte, min(len(mask), 32)))
		type result struct {
			proved bool
			err    error
		}
		done := make(chan result, 1)
		go func() {
			proved, err := fakeClient(cli, mask, honest, hangUp)
			done <- result{proved, err}
		}()
		start := time.Now()
		c, err := s.serverConn(raw)
		took := time.Since(start)
		if c != nil {
			c.Close()
		}
		var peer result
		select {
		case peer = <-done:
		case <-time.After(5 * time.Second): // before the client's own deadline
			t.Fatal("the client never saw the server finish: a refused connection left open?")
		}
		switch {
		case raw.naked.Load():
			t.Fatal("serverConn read or wrote with no deadline set")
		case peer.err != nil:
			t.Fatal(peer.err)
		case (err == nil) != wantOK:
			t.Fatalf("serverConn: %v; want accepted = %v", err, wantOK)
		case err == nil && (!peer.proved || c == nil || raw.deadline.Load()):
			t.Fatalf("accepted, but proved = %v, conn = %v, deadline still set = %v", peer.proved, c, raw.deadline.Load())
		case err != nil && c != nil:
			t.Fatal("refused, yet returned a connection")
		case err != nil && peer.proved:
			t.Fatal("refused after proving itself to the client")
		case waits && !errors.Is(err, os.ErrDeadlineExceeded):
			t.Fatalf("silent client: %v, want a deadline error", err)
		case !waits && errors.Is(err, os.ErrDeadlineExceeded):
			t.Fatalf("a client that said all it had to say timed out after %v", took)
		case took > raw.limit+2*time.Second:
			t.Fatalf("the handshake took %v, its deadline was %v", took, raw.limit)
		}
	})
}

// fakeServer plays a server against clientHandshake on conn: it sends
// script's first 32 bytes as its nonce, checks the client's HMAC, and
// answers with HMAC(secret, "server" ‖ nonceC) XORed with the next 32
// bytes then the rest as traffic (honest), or with the rest as is. Then
// it hangs up, or waits, silent, for the client to. It returns an error if
// the client's answer is wrong.
func fakeServer(conn net.Conn, script []byte, honest, hangUp bool) error {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	nonceS := script[:min(len(script), 32)]
	if _, err := conn.Write(nonceS); err != nil {
		return nil // the client gave up
	}
	if len(nonceS) == 32 {
		reply := make([]byte, 64)
		if _, err := io.ReadFull(conn, reply); err != nil {
			return fmt.Errorf("the client's answer: %w", err)
		}
		if !hmac.Equal(reply[:32], testMAC("client", nonceS)) {
			return fmt.Errorf("the client's HMAC %x is wrong", reply[:32])
		}
		rest := script[32:]
		if honest {
			proof := testMAC("server", reply[32:])
			for i := range min(len(rest), len(proof)) {
				proof[i] ^= rest[i]
			}
			rest = append(proof, rest[min(len(rest), 32):]...)
		}
		_, _ = conn.Write(rest) // fails once the client has read 32 bytes and hung up
	}
	if !hangUp {
		_, _ = io.Copy(io.Discard, conn)
	}
	return nil
}

// FuzzClientHandshake plays arbitrary servers against clientHandshake, the
// dialing side. It accepts only a server that proves it holds the secret
// (the right HMAC over the client's own nonce) and refuses everything
// else with an error, under the deadline its caller (Dial) sets; a silent
// server costs it that deadline, no more (TestDialGivesUpOnASilentPeer).
func FuzzClientHandshake(f *testing.F) {
	nonce := bytes.Repeat([]byte{7}, 32)
	f.Add(nonce, true, true)                                            // the honest server
	f.Add(append(bytes.Clone(nonce), make([]byte, 40)...), true, false) // and then traffic
	f.Add(append(bytes.Clone(nonce), 1), true, true)                    // one bit of the HMAC off
	f.Add(append(bytes.Clone(nonce), make([]byte, 32)...), false, true) // zeros for a proof
	f.Add(nonce[:5], false, true)                                       // truncated nonce, hangs up
	f.Add(nonce[:5], false, false)                                      // truncated nonce, silent
	f.Add(append(bytes.Clone(nonce), "short"...), false, false)         // truncated proof, silent
	s := &authStream{secret: testSecret}
	f.Fuzz(func(t *testing.T, script []byte, honest, hangUp bool) {
		cli, srv := net.Pipe()
		defer cli.Close()
		sentProof := len(script) >= 32 && (honest || len(script) >= 64)
		waits := !hangUp && !sentProof
		limit := handshakeTimeout
		if waits {
			limit = 20 * time.Millisecond
		}
		wantOK := len(script) >= 32 && honest && bytes.Equal(script[32:min(len(script), 64)], make([]byte, min(len(script), 64)-32))
		done := make(chan error, 1)
		go func() { done <- fakeServer(srv, script, honest, hangUp) }()
		// As Dial does: one deadline over the whole handshake.
		_ = cli.SetDeadline(time.Now().Add(limit))
		start := time.Now()
		err := s.clientHandshake(cli, nil)
		took := time.Since(start)
		cli.Close()
		var serr error
		select {
		case serr = <-done:
		case <-time.After(5 * time.Second): // before the server's own deadline
			t.Fatal("the server never finished")
		}
		switch {
		case serr != nil:
			t.Fatal(serr)
		case (err == nil) != wantOK:
			t.Fatalf("clientHandshake: %v; want accepted = %v", err, wantOK)
		case waits && !errors.Is(err, os.ErrDeadlineExceeded):
			t.Fatalf("silent server: %v, want a deadline error", err)
		case !waits && errors.Is(err, os.ErrDeadlineExceeded):
			t.Fatalf("a server that said all it had to say timed out after %v", took)
		case took > limit+2*time.Second:
			t.Fatalf("the handshake took %v, its deadline was %v", took, limit)
		}
	})
}

// Dial bounds the whole handshake by its timeout: a peer that accepts the
// TCP connection and then says nothing costs the dialer that long, no
// more.
func TestDialGivesUpOnASilentPeer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // silent until the test ends
		}
	}()
	start := time.Now()
	c, err := dialer(testSecret, nil).Dial(raft.ServerAddress(ln.Addr().String()), 200*time.Millisecond)
	if err == nil {
		c.Close()
		t.Fatal("a silent peer authenticated")
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Dial: %v, want a deadline error", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Dial took %v with a timeout of 200ms", took)
	}
}
