package zlog

import (
	"bytes"
	"errors"
	"log"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"
	"github.com/hashicorp/go-hclog"
	"github.com/rs/zerolog"
)

// lines returns what was written to b, one string per line.
func lines(b *bytes.Buffer) []string {
	s := strings.TrimSuffix(b.String(), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func expectLines(t *testing.T, b *bytes.Buffer, want ...string) {
	t.Helper()
	got := lines(b)
	if len(got) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(got), len(want), b.String())
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d:\n got %s\nwant %s", i, got[i], want[i])
		}
	}
	b.Reset()
}

func TestHclogLevels(t *testing.T) {
	var b bytes.Buffer
	l := Hclog(zerolog.New(&b), "raft", hclog.Trace)
	// NoLevel is below every threshold and Off above none: neither is
	// written, as in hclog.
	for _, level := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn, hclog.Error, hclog.NoLevel, hclog.Off} {
		l.Log(level, "m")
	}
	expectLines(t, &b,
		`{"level":"trace","logger":"raft","message":"m"}`,
		`{"level":"debug","logger":"raft","message":"m"}`,
		`{"level":"info","logger":"raft","message":"m"}`,
		`{"level":"warn","logger":"raft","message":"m"}`,
		`{"level":"error","logger":"raft","message":"m"}`,
	)
	l.Trace("t")
	l.Debug("d")
	l.Info("i")
	l.Warn("w")
	l.Error("e")
	expectLines(t, &b,
		`{"level":"trace","logger":"raft","message":"t"}`,
		`{"level":"debug","logger":"raft","message":"d"}`,
		`{"level":"info","logger":"raft","message":"i"}`,
		`{"level":"warn","logger":"raft","message":"w"}`,
		`{"level":"error","logger":"raft","message":"e"}`,
	)
}

func TestHclogThreshold(t *testing.T) {
	var b bytes.Buffer
	l := Hclog(zerolog.New(&b), "raft", hclog.Warn)
	sub := l.Named("net").With("peer", "n2")
	l.Info("dropped")
	sub.Info("dropped")
	sub.Warn("kept")
	expectLines(t, &b, `{"level":"warn","logger":"raft.net","peer":"n2","message":"kept"}`)
	if l.IsInfo() || !l.IsWarn() || !l.IsError() || l.GetLevel() != hclog.Warn {
		t.Errorf("at warn: IsInfo %v IsWarn %v IsError %v GetLevel %v", l.IsInfo(), l.IsWarn(), l.IsError(), l.GetLevel())
	}
	// SetLevel on a derived logger moves the whole family, as in hclog.
	sub.SetLevel(hclog.Debug)
	if !l.IsDebug() || l.IsTrace() {
		t.Errorf("after SetLevel(Debug) on a sub-logger: IsDebug %v IsTrace %v", l.IsDebug(), l.IsTrace())
	}
	l.Debug("now")
	expectLines(t, &b, `{"level":"debug","logger":"raft","message":"now"}`)
	l.SetLevel(hclog.NoLevel)
	if l.GetLevel() != hclog.Info {
		t.Errorf("SetLevel(NoLevel): GetLevel %v, want info", l.GetLevel())
	}
	l.SetLevel(hclog.Off)
	l.Error("off")
	expectLines(t, &b)

	// The zerolog logger's own level filters too.
	l = Hclog(zerolog.New(&b).Level(zerolog.WarnLevel), "raft", hclog.Trace)
	l.Info("dropped by zerolog")
	if l.IsInfo() || !l.IsWarn() {
		t.Errorf("zerolog at warn: IsInfo %v IsWarn %v", l.IsInfo(), l.IsWarn())
	}
	expectLines(t, &b)
}

type addr string

func (a addr) String() string { return "tcp://" + string(a) }

func TestHclogFields(t *testing.T) {
	var b bytes.Buffer
	l := Hclog(zerolog.New(&b), "raft", hclog.Trace)
	l.Warn("failed to contact", "id", "n2", "error", errors.New("dial tcp: refused"), "term", 3,
		"timeout", 1500*time.Millisecond, "addr", addr("127.0.0.1:7000"), "fmt", hclog.Fmt("%d-%s", 1, "a"),
		"servers", []string{"n1", "n2"}, 7, "seven", "lonely")
	expectLines(t, &b, `{"level":"warn","logger":"raft","id":"n2","error":"dial tcp: refused","term":3,"timeout":"1.5s",`+
		`"addr":"tcp://127.0.0.1:7000","fmt":"1-a","servers":["n1","n2"],"7":"seven","EXTRA_VALUE_AT_END":"lonely","message":"failed to contact"}`)

	// With: implied fields come first; a key With repeats takes the new
	// value; an odd value is kept under hclog's MissingKey.
	w := l.With("node", "n1", "term", 1).With("term", 2, "odd")
	if got := w.ImpliedArgs(); len(got) != 6 || got[3] != 2 || got[4] != hclog.MissingKey || got[5] != "odd" {
		t.Errorf("ImpliedArgs = %v", got)
	}
	w.Info("hi", "k", "v")
	expectLines(t, &b, `{"level":"info","logger":"raft","node":"n1","term":2,"EXTRA_VALUE_AT_END":"odd","k":"v","message":"hi"}`)
	if got := l.ImpliedArgs(); len(got) != 0 {
		t.Errorf("With changed its parent: %v", got)
	}

	// Names: Named appends with a dot, ResetNamed replaces, "" omits the field.
	n := l.Named("net").Named("tls")
	if n.Name() != "raft.net.tls" || l.Name() != "raft" {
		t.Errorf("names %q, %q", n.Name(), l.Name())
	}
	n.ResetNamed("snap").Info("a")
	n.ResetNamed("").Info("b")
	Hclog(zerolog.New(&b), "", hclog.Info).Named("x").Info("c")
	expectLines(t, &b,
		`{"level":"info","logger":"snap","message":"a"}`,
		`{"level":"info","message":"b"}`,
		`{"level":"info","logger":"x","message":"c"}`,
	)
}

func TestHclogStandardLogger(t *testing.T) {
	var b bytes.Buffer
	l := Hclog(zerolog.New(&b), "raft", hclog.Debug).With("node", "n1")
	l.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}).Print("[WARN] raft: heartbeat timeout\n")
	l.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}).Print("no tag")
	l.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true, InferLevelsWithTimestamp: true}).Print("2026/01/02 15:04:05.123 [ERR] x")
	l.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Error}).Print("[INFO] forced")
	l.StandardLogger(nil).Print("[WARN] as written")
	l.StandardLogger(nil).Print("[TRACE] below the threshold")
	if _, err := l.StandardWriter(&hclog.StandardLoggerOptions{InferLevels: true}).Write([]byte("[TRACE] below the threshold\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := l.StandardWriter(&hclog.StandardLoggerOptions{InferLevels: true}).Write([]byte("[DEBUG] at it\n")); err != nil {
		t.Fatal(err)
	}
	expectLines(t, &b,
		`{"level":"warn","logger":"raft","node":"n1","message":"raft: heartbeat timeout"}`,
		`{"level":"info","logger":"raft","node":"n1","message":"no tag"}`,
		`{"level":"error","logger":"raft","node":"n1","message":"x"}`,
		`{"level":"error","logger":"raft","node":"n1","message":"forced"}`,
		`{"level":"info","logger":"raft","node":"n1","message":"[WARN] as written"}`,
		`{"level":"info","logger":"raft","node":"n1","message":"[TRACE] below the threshold"}`,
		`{"level":"debug","logger":"raft","node":"n1","message":"at it"}`,
	)
}

func TestPrinter(t *testing.T) {
	var b bytes.Buffer
	p := NewPrinter(zerolog.New(&b).With().Str(NameField, "fasthttp.proxy").Logger(), zerolog.WarnLevel)
	p.Printf("error when serving connection %q<->%q: %v", "127.0.0.1:1", "127.0.0.1:2", errors.New("cannot parse"))
	p.Printf("with a newline %d\n", 1)
	expectLines(t, &b,
		`{"level":"warn","logger":"fasthttp.proxy","message":"error when serving connection \"127.0.0.1:1\"<->\"127.0.0.1:2\": cannot parse"}`,
		`{"level":"warn","logger":"fasthttp.proxy","message":"with a newline 1"}`,
	)
	NewPrinter(zerolog.New(&b).Level(zerolog.ErrorLevel), zerolog.WarnLevel).Printf("dropped")
	NewPrinter(zerolog.Logger{}, zerolog.ErrorLevel).Printf("no writer")
	expectLines(t, &b)
}

func TestWriterForStandardLog(t *testing.T) {
	var b bytes.Buffer
	std := log.New(Writer(zerolog.New(&b).With().Str(NameField, "stdlog").Logger()), "", 0)
	std.Print("[ERROR] disk full")
	std.Print("plain words")
	std.Print("[DEBUG]   spaced\n\n")
	expectLines(t, &b,
		`{"level":"error","logger":"stdlog","message":"disk full"}`,
		`{"level":"info","logger":"stdlog","message":"plain words"}`,
		`{"level":"debug","logger":"stdlog","message":"spaced"}`,
	)
}

func TestPebble(t *testing.T) {
	var b bytes.Buffer
	zl := zerolog.New(&b).With().Str("db", "raftlog").Logger()
	Pebble(zl).Infof("[JOB %d] WAL replayed\n", 1)
	Pebble(zl.Level(zerolog.InfoLevel)).Infof("dropped")
	ev := PebbleEvents(zl)
	ev.BackgroundError(errors.New("compaction failed"))
	ev.WriteStallBegin(pebble.WriteStallBeginInfo{Reason: "memtable count limit reached"})
	ev.WriteStallEnd()
	ev.DiskSlow(pebble.DiskSlowInfo{Path: "/d/000001.log", OpType: vfs.OpTypeWrite, Duration: 2 * time.Second})
	expectLines(t, &b,
		`{"level":"debug","db":"raftlog","logger":"pebble","message":"[JOB 1] WAL replayed"}`,
		`{"level":"error","db":"raftlog","logger":"pebble","error":"compaction failed","message":"background error"}`,
		`{"level":"warn","db":"raftlog","logger":"pebble","reason":"memtable count limit reached","message":"write stall beginning"}`,
		`{"level":"info","db":"raftlog","logger":"pebble","message":"write stall ending"}`,
		`{"level":"warn","db":"raftlog","logger":"pebble","path":"/d/000001.log","op":"write","elapsed":2000,"message":"disk slowness detected"}`,
	)
}
