package node

import (
	"zenmux/cluster"
	"zenmux/config"
	"zenmux/ledger"
)

// seed proposes the cluster's initial settings once, from the built-in
// defaults merged with config by id (docs/config.md).
func seed(cfg *config.Config, rep *cluster.Replica) error {
	if rep.Ledger().Seeded() || !rep.IsLeader() {
		return nil
	}
	_, err := ledger.Propose(rep, seedFromConfig(cfg))
	return err
}

// seedFromConfig is the seed of a validated config: its rate, retention
// and this node as the only member, the built-in plans with the config's
// replacing them by id, and the built-in models (echo and the catalog)
// with the config's entries laid over them key by key
// (config.SeedModels). The ledger checks the whole seed when it applies
// it.
func seedFromConfig(cfg *config.Config) *ledger.Seed {
	plans := make([]ledger.Plan, len(cfg.Plans))
	for i := range cfg.Plans {
		plans[i] = cfg.Plans[i].Ledger()
	}
	return &ledger.Seed{
		NanoUSDPerFlow: int64(cfg.Flow.NanoUSDPerFlow),
		DedupeDays:     cfg.Accounting.DedupeDays,
		RequestLogDays: cfg.Accounting.RequestLogDays,
		Members:        []ledger.Member{{ID: cfg.Node.ID, RaftAddr: cfg.Node.RaftAddr(), AdminAddr: cfg.Node.AdminAddr()}},
		Plans:          mergeByID(ledger.DefaultPlans(), plans, func(p ledger.Plan) string { return p.ID }),
		Models:         cfg.SeedModels(),
		LogFormat:      ledger.LogFormatCurrent,
	}
}

// mergeByID returns builtin with each of over replacing the entry of its
// id in place, or appended after them when its id is new.
func mergeByID[T any](builtin, over []T, id func(T) string) []T {
	at := make(map[string]int, len(builtin)+len(over))
	out := make([]T, 0, len(builtin)+len(over))
	for _, list := range [][]T{builtin, over} {
		for _, e := range list {
			if i, ok := at[id(e)]; ok {
				out[i] = e
				continue
			}
			at[id(e)] = len(out)
			out = append(out, e)
		}
	}
	return out
}
