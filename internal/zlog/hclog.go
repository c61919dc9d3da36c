package zlog

import (
	"fmt"
	"io"
	"log"
	"slices"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"github.com/rs/zerolog"
)

// hcLogger is an hclog.Logger writing through a zerolog.Logger: hclog's
// level becomes the entry's level, its name the NameField, and its
// key/value arguments (With's first, then the call's) the entry's fields.
type hcLogger struct {
	log     zerolog.Logger
	name    string
	implied []any
	// level is hclog's threshold, shared with every logger derived by
	// With and Named: SetLevel on one changes them all, as hclog's does.
	level *atomic.Int32
}

// Hclog returns an hclog.Logger named name (the NameField of its entries)
// that writes through log the entries at level or above. log's own level
// filters as well.
func Hclog(log zerolog.Logger, name string, level hclog.Level) hclog.Logger {
	l := &hcLogger{log: log, name: name, level: new(atomic.Int32)}
	l.SetLevel(level)
	return l
}

// zerologLevel maps an hclog level from Trace to Error to zerolog's.
func zerologLevel(level hclog.Level) zerolog.Level {
	switch level {
	case hclog.Trace:
		return zerolog.TraceLevel
	case hclog.Debug:
		return zerolog.DebugLevel
	case hclog.Warn:
		return zerolog.WarnLevel
	case hclog.Error:
		return zerolog.ErrorLevel
	}
	return zerolog.InfoLevel
}

// enabled reports whether an entry at level is written: at or above the
// hclog threshold (which NoLevel never is), not Off, and let through by
// the zerolog logger's level and the global one.
func (l *hcLogger) enabled(level hclog.Level) bool {
	if level == hclog.Off || level < hclog.Level(l.level.Load()) {
		return false
	}
	zl := zerologLevel(level)
	return zl >= l.log.GetLevel() && zl >= zerolog.GlobalLevel()
}

// Log writes msg at level with the implied arguments and args as fields.
func (l *hcLogger) Log(level hclog.Level, msg string, args ...any) {
	if !l.enabled(level) {
		return
	}
	e := l.log.WithLevel(zerologLevel(level))
	if e == nil {
		return
	}
	if l.name != "" {
		e = e.Str(NameField, l.name)
	}
	e = addFields(addFields(e, l.implied), pairs(args))
	e.Msg(msg)
}

// pairs returns args with an odd last value keyed hclog.MissingKey, the
// way hclog writes it.
func pairs(args []any) []any {
	if len(args)%2 == 0 {
		return args
	}
	return append(slices.Clip(args[:len(args)-1]), hclog.MissingKey, args[len(args)-1])
}

// addFields adds key/value pairs to e: an error as its message, a Stringer
// (a time.Duration, a raft.ServerAddress) as its text, an hclog.Format
// formatted, anything else as zerolog renders it (JSON for structs).
func addFields(e *zerolog.Event, kv []any) *zerolog.Event {
	for i := 0; i+1 < len(kv); i += 2 {
		key, ok := kv[i].(string)
		if !ok {
			key = fmt.Sprint(kv[i])
		}
		switch v := kv[i+1].(type) {
		case error:
			e = e.AnErr(key, v)
		case hclog.Format:
			e = e.Str(key, formatValue(v))
		case fmt.Stringer:
			// fmt.Sprint, not v.String(): it survives a nil pointer.
			e = e.Str(key, fmt.Sprint(v))
		default:
			e = e.Interface(key, v)
		}
	}
	return e
}

// formatValue renders an hclog.Format: a Printf format and its arguments.
func formatValue(f hclog.Format) string {
	if len(f) == 0 {
		return ""
	}
	format, ok := f[0].(string)
	if !ok {
		return fmt.Sprint(f...)
	}
	return fmt.Sprintf(format, f[1:]...)
}

// Trace writes msg at trace level.
func (l *hcLogger) Trace(msg string, args ...any) { l.Log(hclog.Trace, msg, args...) }

// Debug writes msg at debug level.
func (l *hcLogger) Debug(msg string, args ...any) { l.Log(hclog.Debug, msg, args...) }

// Info writes msg at info level.
func (l *hcLogger) Info(msg string, args ...any) { l.Log(hclog.Info, msg, args...) }

// Warn writes msg at warn level.
func (l *hcLogger) Warn(msg string, args ...any) { l.Log(hclog.Warn, msg, args...) }

// Error writes msg at error level.
func (l *hcLogger) Error(msg string, args ...any) { l.Log(hclog.Error, msg, args...) }

// IsTrace reports whether trace entries are written.
func (l *hcLogger) IsTrace() bool { return l.enabled(hclog.Trace) }

// IsDebug reports whether debug entries are written.
func (l *hcLogger) IsDebug() bool { return l.enabled(hclog.Debug) }

// IsInfo reports whether info entries are written.
func (l *hcLogger) IsInfo() bool { return l.enabled(hclog.Info) }

// IsWarn reports whether warn entries are written.
func (l *hcLogger) IsWarn() bool { return l.enabled(hclog.Warn) }

// IsError reports whether error entries are written.
func (l *hcLogger) IsError() bool { return l.enabled(hclog.Error) }

// ImpliedArgs returns the key/value pairs With added.
func (l *hcLogger) ImpliedArgs() []any { return slices.Clone(l.implied) }

// With returns a logger that adds args to every entry; a key already
// implied takes the new value, as in hclog.
func (l *hcLogger) With(args ...any) hclog.Logger {
	implied := slices.Clone(l.implied)
	args = pairs(args)
next:
	for i := 0; i+1 < len(args); i += 2 {
		for j := 0; j+1 < len(implied); j += 2 {
			if implied[j] == args[i] {
				implied[j+1] = args[i+1]
				continue next
			}
		}
		implied = append(implied, args[i], args[i+1])
	}
	c := *l
	c.implied = implied
	return &c
}

// Name returns the logger's name.
func (l *hcLogger) Name() string { return l.name }

// Named returns a logger whose name is this one's and name, joined by a
// dot.
func (l *hcLogger) Named(name string) hclog.Logger {
	if l.name != "" {
		name = l.name + "." + name
	}
	return l.ResetNamed(name)
}

// ResetNamed returns a logger named name.
func (l *hcLogger) ResetNamed(name string) hclog.Logger {
	c := *l
	c.name = name
	return &c
}

// SetLevel sets the threshold of this logger and of those derived from
// it; NoLevel means hclog's default, info.
func (l *hcLogger) SetLevel(level hclog.Level) {
	if level == hclog.NoLevel {
		level = hclog.DefaultLevel
	}
	l.level.Store(int32(level))
}

// GetLevel returns the threshold.
func (l *hcLogger) GetLevel() hclog.Level { return hclog.Level(l.level.Load()) }

// StandardLogger returns a standard library logger writing through this
// one, each line an entry (see StandardWriter).
func (l *hcLogger) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(l.StandardWriter(opts), "", 0)
}

// StandardWriter returns a writer that turns each Write into one entry
// of this logger, honouring opts as hclog does: ForceLevel writes every
// line at that level, InferLevels takes it from a leading tag ([WARN]),
// after a timestamp with InferLevelsWithTimestamp; otherwise info.
func (l *hcLogger) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	if opts == nil {
		opts = &hclog.StandardLoggerOptions{}
	}
	return hcWriter{l: l, lines: lineParser{force: opts.ForceLevel, infer: opts.InferLevels, inferTime: opts.InferLevelsWithTimestamp}}
}

// hcWriter is StandardWriter's io.Writer.
type hcWriter struct {
	l     *hcLogger
	lines lineParser
}

func (w hcWriter) Write(p []byte) (int, error) {
	level, msg := w.lines.parse(p)
	w.l.Log(level, msg)
	return len(p), nil
}
