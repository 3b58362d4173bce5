// Package option fills in the defaults of options structs, whose zero values (and, for
// counts and durations, negative ones) mean "the default".
package option

// Number is what an option counts or measures: a count, a size, a rate, a duration.
type Number interface {
	~int | ~int32 | ~int64 | ~uint32 | ~uint64 | ~float64
}

// Default sets *v to def unless *v is positive.
func Default[T Number](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}
