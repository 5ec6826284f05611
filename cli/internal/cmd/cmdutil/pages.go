package cmdutil

// AllPages reads a whole list: page(token) returns one page's items and
// the next page's token, from the first page (token "") until a page
// says there is no next one. For short lists printed whole (teams,
// members, runners, tokens); long ones print page by page (stream.go).
func AllPages[T any](page func(token string) (items []T, next string, err error)) ([]T, error) {
	var all []T
	token := ""
	for {
		items, next, err := page(token)
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		if next == "" {
			return all, nil
		}
		token = next
	}
}
