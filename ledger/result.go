package ledger

import (
	"encoding/json"
	"fmt"
)

// Result is the outcome of applying one command: its answer, typed by the
// command's apply method, or a rejection (Err; the state is unchanged).
// Callers get the typed answer through Propose or Answer.
type Result struct {
	ans answer
	Err error
}

// answer is a command's typed answer: a value[R] for the command's R.
type answer interface {
	encode() ([]byte, error)
}

type value[R any] struct{ v R }

func (a value[R]) encode() ([]byte, error) { return json.Marshal(a.v) }

// Answer unwraps r, the result of applying cmd, into cmd's answer type.
func Answer[R any](cmd Cmd[R], r Result) (R, error) {
	var zero R
	if r.Err != nil {
		return zero, r.Err
	}
	v, ok := r.ans.(value[R])
	if !ok {
		return zero, fmt.Errorf("ledger: %T answered %T", cmd, r.ans)
	}
	return v.v, nil
}

// Rejected is a result that refuses a command with err.
func Rejected(err error) Result { return Result{Err: err} }

// EncodeAnswer is the JSON of a result's answer, for a leader answering a
// forwarded command ("null" for a rejection).
func (r Result) EncodeAnswer() ([]byte, error) {
	if r.ans == nil {
		return []byte("null"), nil
	}
	return r.ans.encode()
}

// DecodeAnswer rebuilds, on the node that forwarded cmd, the answer the
// leader encoded with EncodeAnswer, typed through cmd's table entry.
func DecodeAnswer(cmd Command, raw []byte) (Result, error) {
	a, err := def(cmd).decode(raw)
	if err != nil {
		return Result{}, err
	}
	return Result{ans: a}, nil
}

// Proposer commits commands: a node, which proposes on the leader or
// forwards to it. An error means the command was not committed, or its
// outcome is unknown; a rejection by the ledger comes back in Result.Err.
type Proposer interface {
	Propose(cmd Command) (Result, error)
}

// Propose commits cmd through p and returns its typed answer.
func Propose[R any](p Proposer, cmd Cmd[R]) (R, error) {
	r, err := p.Propose(cmd)
	if err != nil {
		var zero R
		return zero, err
	}
	return Answer(cmd, r)
}
