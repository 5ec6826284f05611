package resolver

// Hooks of the benchmarks.

// BenchTestOmitEvents makes d drop its audit events instead of writing
// them into the outbox, so that BenchmarkResolveRun can show what
// auditing costs. Benchmarks only.
func BenchTestOmitEvents(d *Directory) { d.outbox.DiscardEvents() }
