#!/usr/bin/env bash
# Cold build cost of the root package: a program that uses only fanout.New
# and Run, and the same program written with errgroup, each built with an
# empty GOCACHE, interleaved ROUNDS times (default 3). Prints wall seconds,
# the peak RSS of the largest build process, and the binary size.
#
#   bash bench/buildcost/run.sh [ROUNDS]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
rounds=${1:-3}
work=$(mktemp -d)
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT

syncv=$(cd "$root" && go list -m -f '{{.Version}}' golang.org/x/sync)
goline=$(grep '^go ' "$root/go.mod")

mkdir -p "$work/fanout" "$work/errgroup"
cat > "$work/fanout/main.go" <<'GO'
package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/awsfanout/fanout"
)

func main() {
	f := fanout.New[string](func(o *fanout.Options) { o.Limit = 4 })
	res, err := f.Run(context.Background(), []string{"a", "b", "c"}, func(_ context.Context, k string) (string, error) {
		return strings.ToUpper(k), nil
	})
	fmt.Println(res.Values(), err)
}
GO
cat > "$work/errgroup/main.go" <<'GO'
package main

import (
	"context"
	"fmt"
	"strings"

	"golang.org/x/sync/errgroup"
)

func main() {
	keys := []string{"a", "b", "c"}
	out := make([]string, len(keys))
	g, _ := errgroup.WithContext(context.Background())
	g.SetLimit(4)
	for i, k := range keys {
		g.Go(func() error { out[i] = strings.ToUpper(k); return nil })
	}
	err := g.Wait()
	fmt.Println(out, err)
}
GO
printf 'module example.com/fanoutbuild\n\n%s\n\nrequire github.com/awsfanout/fanout v0.0.0\n\nreplace github.com/awsfanout/fanout => %s\n' "$goline" "$root" > "$work/fanout/go.mod"
printf 'module example.com/errgroupbuild\n\n%s\n\nrequire golang.org/x/sync %s\n' "$goline" "$syncv" > "$work/errgroup/go.mod"
(cd "$work/fanout" && go mod tidy >/dev/null 2>&1)
(cd "$work/errgroup" && go mod tidy >/dev/null 2>&1)

printf '%-9s %6s %8s %8s\n' program wall_s peak_mb bin_mb
for _ in $(seq "$rounds"); do
	for p in fanout errgroup; do
		cache=$(mktemp -d "$work/cache.XXXX")
		stats=$(cd "$work/$p" && GOCACHE=$cache GOFLAGS=-trimpath /usr/bin/time -f '%e %M' go build -o "$work/$p.bin" . 2>&1 >/dev/null | tail -1)
		read -r wall kb <<<"$stats"
		size=$(stat -c %s "$work/$p.bin")
		printf '%-9s %6.1f %8.0f %8.1f\n' "$p" "$wall" "$((kb / 1024))" "$(awk -v s="$size" 'BEGIN { print s / 1048576 }')"
		chmod -R u+w "$cache"
		rm -rf "$cache"
	done
done
