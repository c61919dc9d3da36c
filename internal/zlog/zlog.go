// Package zlog routes the logs of the libraries a node runs — hashicorp/raft
// (go-hclog), Pebble, fasthttp and Go's standard log package — through the
// node's zerolog.Logger, so every line a node writes is one JSON object with
// a "level" and a "message". Each adapter names its source in a "logger"
// field.
package zlog

import (
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/rs/zerolog"
)

// NameField is the field that names the library or subsystem an entry
// comes from ("raft", "raft.net", "pebble", "fasthttp.proxy", "stdlog").
const NameField = "logger"

// Printer adapts a zerolog.Logger to the one-method Printf interface of
// fasthttp.Logger: each call is one entry at a fixed level.
type Printer struct {
	log   zerolog.Logger
	level zerolog.Level
}

// NewPrinter returns a Printer writing through log at level. fasthttp
// prints only what went wrong with a connection (a client's malformed
// request, an accept error), so servers use zerolog.WarnLevel.
func NewPrinter(log zerolog.Logger, level zerolog.Level) Printer {
	return Printer{log: log, level: level}
}

// Printf writes one entry whose message is the formatted text, without a
// trailing newline.
func (p Printer) Printf(format string, args ...any) {
	msgf(p.log.WithLevel(p.level), format, args)
}

// msgf sends e with the formatted text as its message, without a trailing
// newline; it formats nothing when e is nil (its level is not written).
func msgf(e *zerolog.Event, format string, args []any) {
	if e == nil {
		return
	}
	e.Msg(strings.TrimRight(fmt.Sprintf(format, args...), "\n"))
}

// Writer returns an io.Writer that turns each Write (the standard log
// package writes one line per call) into one entry through log. A line
// starting with a level tag ([TRACE], [DEBUG], [INFO], [WARN], [ERR],
// [ERROR]) is written at that level, without the tag; any other line at
// info. Give log.SetOutput this writer and log.SetFlags(0): the entry
// carries its own time.
func Writer(log zerolog.Logger) io.Writer {
	return stdWriter{log: log, lines: lineParser{infer: true}}
}

// stdWriter is Writer's io.Writer.
type stdWriter struct {
	log   zerolog.Logger
	lines lineParser
}

func (w stdWriter) Write(p []byte) (int, error) {
	level, msg := w.lines.parse(p)
	w.log.WithLevel(zerologLevel(level)).Msg(msg)
	return len(p), nil
}

// lineParser reads the level and message of one line written through a
// standard library logger, with hclog's StandardLoggerOptions rules.
type lineParser struct {
	// force, unless NoLevel, is every line's level; a level tag is
	// stripped.
	force hclog.Level
	// infer: a level tag gives the level; inferTime: a timestamp before the
	// tag is dropped first. Without either, a line is info, as written.
	infer, inferTime bool
}

// timestampPrefix matches the date and time characters the standard log
// package and most others put before a level tag.
var timestampPrefix = regexp.MustCompile(`^[\d\s:/.+\-TZ]*`)

func (p lineParser) parse(b []byte) (hclog.Level, string) {
	line := strings.TrimRight(string(b), " \t\n")
	switch {
	case p.force != hclog.NoLevel:
		_, line = levelTag(line)
		return p.force, line
	case p.infer:
		if p.inferTime {
			line = line[len(timestampPrefix.FindString(line)):]
		}
		return levelTag(line)
	}
	return hclog.Info, line
}

// levelTags are the tags hclog and hashicorp's libraries put in front of a
// line; "[ERR]" is not a prefix of "[ERROR]", so order does not matter.
var levelTags = []struct {
	tag   string
	level hclog.Level
}{
	{"[TRACE]", hclog.Trace},
	{"[DEBUG]", hclog.Debug},
	{"[INFO]", hclog.Info},
	{"[WARN]", hclog.Warn},
	{"[ERROR]", hclog.Error},
	{"[ERR]", hclog.Error},
}

// levelTag returns the level a line's tag names and the line without it;
// info and the line itself when it has none.
func levelTag(line string) (hclog.Level, string) {
	for _, t := range levelTags {
		if rest, ok := strings.CutPrefix(line, t.tag); ok {
			return t.level, strings.TrimSpace(rest)
		}
	}
	return hclog.Info, line
}
