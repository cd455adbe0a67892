package azfunc

import (
	"io"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// NewLogger returns a zap logger shaped for the Functions host, which reads the handler's output line
// by line: info and debug go to stdout (logged as Information); warn and above go to stderr, where the
// host maps a line containing "warn" to Warning and one containing "error" to Error. Levels above error
// are spelled with "-error" so that the host does not log a panic as Information. Lines are JSON, one
// per entry, with stack traces escaped inside the line.
func NewLogger(stdout, stderr io.Writer, level zapcore.Level) *zap.Logger {
	ec := zap.NewProductionEncoderConfig()
	ec.TimeKey, ec.EncodeTime = "time", zapcore.ISO8601TimeEncoder
	ec.EncodeDuration = zapcore.MillisDurationEncoder
	ec.EncodeLevel = func(l zapcore.Level, e zapcore.PrimitiveArrayEncoder) {
		if l > zapcore.ErrorLevel {
			e.AppendString(l.String() + "-error")
			return
		}
		e.AppendString(l.String())
	}
	enc := zapcore.NewJSONEncoder(ec)
	low := zap.LevelEnablerFunc(func(l zapcore.Level) bool { return l >= level && l < zapcore.WarnLevel })
	high := zap.LevelEnablerFunc(func(l zapcore.Level) bool { return l >= level && l >= zapcore.WarnLevel })
	return zap.New(zapcore.NewTee(
		zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(stdout)), low),
		zapcore.NewCore(enc.Clone(), zapcore.Lock(zapcore.AddSync(stderr)), high),
	), zap.AddCaller(), zap.AddStacktrace(zapcore.ErrorLevel))
}
