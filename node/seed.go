package node

import (
	"fmt"
	"strconv"

	"zenmux/config"
	"zenmux/ledger"
)

// seed proposes the cluster's initial settings once, from the built-in
// defaults merged with config by id (docs/api.md, "Seeding").
func (n *Node) seed() error {
	if n.store.Ledger().Seeded() || !n.store.IsLeader() {
		return nil
	}
	s, err := seedFromConfig(n.cfg)
	if err != nil {
		return err
	}
	_, err = ledger.Propose(n, s)
	return err
}

func seedFromConfig(cfg *config.Config) (*ledger.Seed, error) {
	rate, err := ledger.ParseDecimal(strconv.FormatFloat(cfg.Flow.UsdPerFlow, 'f', -1, 64), 9, ledger.MaxNanoUSDPerFlow)
	if err != nil {
		return nil, fmt.Errorf("config: flow.usd_per_flow: %w", err)
	}
	s := &ledger.Seed{NanoUSDPerFlow: rate, DedupeDays: cfg.Accounting.DedupeDays, RequestLogDays: cfg.Accounting.RequestLogDays,
		Members: []ledger.Member{{ID: cfg.Node.ID, RaftAddr: cfg.Node.RaftAddr(), AdminAddr: cfg.Node.AdminAddr()}}}
	plans := map[string]ledger.Plan{}
	var order []string
	for _, p := range ledger.DefaultPlans() {
		plans[p.ID] = p
		order = append(order, p.ID)
	}
	for i, p := range cfg.Plans {
		lp, err := planFromConfig(p)
		if err != nil {
			return nil, fmt.Errorf("config: plans[%d]: %w", i, err)
		}
		if _, ok := plans[lp.ID]; !ok {
			order = append(order, lp.ID)
		}
		plans[lp.ID] = lp
	}
	for _, id := range order {
		s.Plans = append(s.Plans, plans[id])
	}
	models := map[string]ledger.Model{}
	order = order[:0]
	for _, m := range ledger.DefaultModels() {
		models[m.ID] = m
		order = append(order, m.ID)
	}
	for i, m := range cfg.Models {
		lm, err := modelFromConfig(m)
		if err != nil {
			return nil, fmt.Errorf("config: models[%d]: %w", i, err)
		}
		if _, ok := models[lm.ID]; !ok {
			order = append(order, lm.ID)
		}
		models[lm.ID] = lm
	}
	for _, id := range order {
		s.Models = append(s.Models, models[id])
	}
	return s, nil
}

func micros(fields map[string]float64, dst map[string]*int64) error {
	for name, v := range fields {
		u, err := config.MicroUnits(v)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		*dst[name] = u
	}
	return nil
}

func planFromConfig(p config.Plan) (ledger.Plan, error) {
	lp := ledger.Plan{ID: p.ID, Name: p.Name, RPM: int64(p.RPM), Burst: int64(p.Burst)}
	if lp.Name == "" {
		lp.Name = p.ID
	}
	err := micros(map[string]float64{"price_usd": p.PriceUSD, "window_5h_flows": p.Window5hFlows, "weekly_flows": p.WeeklyFlows, "monthly_flows": p.MonthlyFlows},
		map[string]*int64{"price_usd": &lp.PriceMicroUSD, "window_5h_flows": &lp.Window5hMicroFlows, "weekly_flows": &lp.WeeklyMicroFlows, "monthly_flows": &lp.MonthlyMicroFlows})
	if err == nil {
		err = ledger.ValidatePlan(&lp)
	}
	return lp, err
}

func modelFromConfig(m config.Model) (ledger.Model, error) {
	lm := ledger.Model{ID: m.ID, Provider: m.Provider, Upstream: m.Upstream, Plans: m.Plans}
	err := micros(map[string]float64{"input_usd_per_mtok": m.InputUSDPerMTok, "output_usd_per_mtok": m.OutputUSDPerMTok,
		"cache_read_usd_per_mtok": m.CacheReadUSDPerMTok, "cache_write_usd_per_mtok": m.CacheWriteUSDPerMTok, "image_usd": m.ImageUSD, "request_usd": m.RequestUSD},
		map[string]*int64{"input_usd_per_mtok": &lm.InputMicroUSDPerMTok, "output_usd_per_mtok": &lm.OutputMicroUSDPerMTok,
			"cache_read_usd_per_mtok": &lm.CacheReadMicroUSDPerM, "cache_write_usd_per_mtok": &lm.CacheWriteMicroUSDPerM, "image_usd": &lm.ImageMicroUSD, "request_usd": &lm.RequestMicroUSD})
	return lm, err
}
