package cli

import (
	"io"
	"text/tabwriter"
)

func newLineWriter(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }
