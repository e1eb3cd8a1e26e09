module gorender

go 1.23
