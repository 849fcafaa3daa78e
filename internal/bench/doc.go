// Package bench measures pmd with many agents connected. BenchmarkFleet connects N agents
// (real TLS 1.3 and yamux each, all in one child process) to one pmd in the benchmark's
// process and reports how long they take to come online, pmd's memory per agent, the CPU pmd
// spends per heartbeat and the round trip of pmd→agent calls, beside a floor: the same hosts
// holding bare TLS connections. BenchmarkReconnectStorm times 5,000 agents coming back after
// pmd restarts; BenchmarkFlood times other hosts' heartbeats while one host floods pmd with
// streams; BenchmarkBots runs bots on the local Docker Engine; BenchmarkCheckout times a
// signed Stripe webhook to the customer's bot running, and argon2id and logins;
// BenchmarkModels measures the model gateway: the latency an agent's model endpoint adds,
// the calls a second it sustains, and the usage records a second pmd commits from an agent.
//
//	go test -run '^$' -bench BenchmarkFleet -benchtime 1x -timeout 30m ./internal/bench/
//
// The package has no non-test code beyond this comment.
package bench
