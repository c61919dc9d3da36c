package translate

import (
	"encoding/json"
	"testing"
)

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", "quote\" back\\ slash", "ctl\x00\x01\x1f\n\r\t", "<a>&b", "\u2028\u2029", "bad\xffutf8", "héllo 世界 🎉"} {
		want, _ := json.Marshal(s)
		if got := AppendString(nil, s); string(got) != string(want) {
			t.Errorf("AppendString(%q) = %s, want %s", s, got, want)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	f.Add("a\"b\\c\x00\u2028\xff")
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := AppendString(nil, s); string(got) != string(want) {
			t.Fatalf("AppendString(%q) = %s, want %s", s, got, want)
		}
	})
}

func BenchmarkAppendString(b *testing.B) {
	s := "Reads a file from the local filesystem. The file_path parameter must be an absolute path, not a relative one.\n"
	buf := make([]byte, 0, 256)
	b.SetBytes(int64(len(s)))
	for i := 0; i < b.N; i++ {
		buf = AppendString(buf[:0], s)
	}
}
