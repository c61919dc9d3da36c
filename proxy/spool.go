package proxy

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"zenmux/ledger"
)

// The charge spool: the batches a node could not commit when it stopped
// (the cluster had no quorum), kept in its data directory for its next
// start, which commits them before anything else (Batcher, C2). The file
// is the header, then per batch its command encoding (ledger.Encode, which
// later builds decode) after its uvarint length. It is written whole to a
// temporary file, synced and renamed, so it is never found half written.
var spoolHeader = []byte("zenmux-charge-spool\x00\x01")

// maxSpoolBatch bounds one batch read back: a length past it is damage.
const maxSpoolBatch = 64 << 20

// ReadSpool returns the batches spooled at path; none when there is no
// file. A damaged file is an error: its charges are usage the node
// served, so it is not skipped.
func ReadSpool(path string) ([]*ledger.ChargeBatch, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	head := make([]byte, len(spoolHeader))
	if _, err := io.ReadFull(r, head); err != nil || string(head) != string(spoolHeader) {
		return nil, fmt.Errorf("charge spool %s: not a spool this build reads", path)
	}
	var out []*ledger.ChargeBatch
	for {
		n, err := binary.ReadUvarint(r)
		if err == io.EOF {
			return out, nil
		}
		if err != nil || n == 0 || n > maxSpoolBatch {
			return nil, fmt.Errorf("charge spool %s: batch %d: bad length", path, len(out)+1)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, fmt.Errorf("charge spool %s: batch %d: %w", path, len(out)+1, err)
		}
		cmd, _, err := ledger.Decode(b)
		cb, ok := cmd.(*ledger.ChargeBatch)
		if err != nil || !ok || len(cb.Charges) == 0 {
			return nil, fmt.Errorf("charge spool %s: batch %d does not decode as charges (%v)", path, len(out)+1, err)
		}
		out = append(out, cb)
	}
}

// writeSpool replaces the spool at path with batches, or removes it when
// there are none; either way durably (the directory is synced too).
func writeSpool(path string, batches []*ledger.ChargeBatch) error {
	dir := filepath.Dir(path)
	if len(batches) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return syncDir(dir)
	}
	buf := append([]byte(nil), spoolHeader...)
	for _, cb := range batches {
		enc, err := ledger.Encode(cb, 0)
		if err != nil {
			return err
		}
		buf = binary.AppendUvarint(buf, uint64(len(enc)))
		buf = append(buf, enc...)
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(buf)
	if err == nil {
		err = f.Sync()
	}
	if err = errors.Join(err, f.Close()); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
