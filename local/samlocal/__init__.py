"""`make sam-local`: the functions in containers (`sam local`), everything else from the local stack."""
