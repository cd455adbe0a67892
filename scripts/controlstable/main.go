// Command controlstable writes the README's table of controls from the catalogue
// (capolicy.CatalogueMarkdown), between the markers <!-- controls:begin --> and <!-- controls:end -->.
//
//	go run ./scripts/controlstable [README.md]
package main

import (
	"bytes"
	"fmt"
	"os"

	"github.com/caguard/caguard/handler/capolicy"
)

const (
	begin = "<!-- controls:begin -->\n"
	end   = "<!-- controls:end -->"
)

func main() {
	path := "README.md"
	if len(os.Args) > 1 {
		path = os.Args[1]
	}
	if err := run(path); err != nil {
		fmt.Fprintln(os.Stderr, "controlstable:", err)
		os.Exit(1)
	}
}

func run(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	i, j := bytes.Index(b, []byte(begin)), bytes.Index(b, []byte(end))
	if i < 0 || j < i {
		return fmt.Errorf("%s has no %q ... %q markers", path, begin, end)
	}
	out := append(append(append([]byte{}, b[:i+len(begin)]...), capolicy.CatalogueMarkdown()...), b[j:]...)
	return os.WriteFile(path, out, 0o644)
}
