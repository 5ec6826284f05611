module github.com/ozsecrets/oz/services

go 1.26.0
