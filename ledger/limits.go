package ledger

// MaxBatchCharges is the most charges one ChargeBatch carries: the most a
// node may propose in one Raft entry (accounting.batch_max_charges is
// validated against it) and the most a replica decodes, so that a garbled
// count cannot make it allocate without limit. It is one bound on purpose:
// a replica accepts every batch a node may write, and refuses a count no
// node could have written. Every batch a configuration has ever allowed
// fits, so lowering the decode side to it strands no log entry.
const MaxBatchCharges = 10_000
