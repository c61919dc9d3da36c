package ledger

// DefaultNanoUSDPerFlow is the seed's rate, 1 Flow ≈ $0.03283 (M3).
const DefaultNanoUSDPerFlow = 32_830_000

// DefaultPlans returns the plans of P1 (docs/rules.md).
func DefaultPlans() []Plan {
	return []Plan{
		{ID: "free", Name: "Free", PriceMicroUSD: 0, Window5hMicroFlows: 5_000000, WeeklyMicroFlows: 38_640000, MonthlyMicroFlows: 165_600000, RPM: 10, Burst: 15},
		{ID: "pro", Name: "Pro", PriceMicroUSD: 20_000000, Window5hMicroFlows: 50_000000, WeeklyMicroFlows: 213_370000, MonthlyMicroFlows: 914_443000, RPM: 10, Burst: 15},
		{ID: "max", Name: "Max", PriceMicroUSD: 100_000000, Window5hMicroFlows: 300_000000, WeeklyMicroFlows: 1280_220000, MonthlyMicroFlows: 5486_659000, RPM: 10, Burst: 15},
		{ID: "ultra", Name: "Ultra", PriceMicroUSD: 200_000000, Window5hMicroFlows: 800_000000, WeeklyMicroFlows: 3413_921000, MonthlyMicroFlows: 14631_091000, RPM: 10, Burst: 15},
	}
}

// EchoModelID is the built-in offline model served by the echo provider.
const EchoModelID = "zenmux/echo"

// DefaultModels returns the built-in catalog: the echo model on every plan.
// Its prices are zenmuxd's own choice (the seed lists no prices), picked so
// that demo requests cost a visible, exact number of Flows: $1 per million
// input tokens, $4 per million output, $0.10 cache read, $1.25 cache write.
func DefaultModels() []Model {
	return []Model{{
		ID: EchoModelID, Provider: "echo", Upstream: "echo",
		InputMicroUSDPerMTok: 1_000000, OutputMicroUSDPerMTok: 4_000000,
		CacheReadMicroUSDPerM: 100000, CacheWriteMicroUSDPerM: 1_250000,
		Plans: []string{"free", "pro", "max", "ultra"},
	}}
}
