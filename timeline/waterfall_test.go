package timeline

import (
	"math"
	"testing"
)

func TestNum(t *testing.T) {
	for name, tc := range map[string]struct {
		v    any
		want float64
	}{
		"int":     {2, 2},
		"int32":   {int32(2), 2},
		"int64":   {int64(2), 2},
		"uint":    {uint(2), 2},
		"uint32":  {uint32(2), 2},
		"uint64":  {uint64(2), 2},
		"float32": {float32(0.5), 0.5},
		"float64": {0.25, 0.25},
		"string":  {"2", 0},
		"nil":     {nil, 0},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := num(tc.v); got != tc.want {
				t.Errorf("num(%#v) = %v; want %v", tc.v, got, tc.want)
			}
		})
	}
}

func TestRowLabel(t *testing.T) {
	for name, tc := range map[string]struct {
		props map[string]any
		key   string
		want  string
	}{
		"region":          {map[string]any{propRegion: "eu-west-1"}, "k", "eu-west-1"},
		"another account": {map[string]any{propRegion: "eu-west-1", propAccount: "111122223333"}, "k", "111122223333/eu-west-1"},
		"no region":       {map[string]any{propAccount: "111122223333"}, "<a&b>", "<a&b>"},
		"not a string":    {map[string]any{propRegion: 7}, "k", "7"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := rowLabel(tc.props, tc.key); got != tc.want {
				t.Errorf("rowLabel(%v, %q) = %q; want %q", tc.props, tc.key, got, tc.want)
			}
		})
	}
}

func TestScale(t *testing.T) {
	var s scale
	for _, v := range []float64{2, 0.02, 0, -1, 0.2} {
		s.add(v)
	}
	for v, want := range map[float64]float64{0.02: 0, 2: 1, 0.2: 0.5, 0: 0, 0.01: 0} {
		if got := s.at(v); math.Abs(got-want) > 1e-9 {
			t.Errorf("at(%v) = %v; want %v between %v and %v", v, got, want, s.lo, s.hi)
		}
	}
	one := scale{}
	one.add(3)
	if got := one.at(3); got != 0.5 {
		t.Errorf("with one sample, at(3) = %v; want the middle", got)
	}
}
