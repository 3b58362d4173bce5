// Package suggest turns observed flows into the NetworkPolicy rules that allow them: the
// smallest addition that keeps the flows a change would cut (a "no" that carries the way
// forward), and least-privilege policies for a namespace from its traffic. Every answer is
// checked with the evaluator before it is offered — the policies as they would be with it
// cut none of the flows given — and says what else it would open, pair by pair, over the
// workloads known.
//
// It is pure, like the evaluator it asks: k8s API types in, k8s API types out. The offline
// CLI (`check --suggest`, `recommend`) and the webhook (the "fix:" line of an answer) call it.
package suggest
