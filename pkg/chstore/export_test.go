package chstore

// SetRowByRow makes Insert append row by row (the path before the columnar
// one) until the returned function is called.
func SetRowByRow(v bool) (restore func()) {
	old := rowByRow
	rowByRow = v
	return func() { rowByRow = old }
}
