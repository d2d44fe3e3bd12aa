"""Payments: the monthly runs (pay, hold, stop, resume with arrears), manual holds, the
registries' overpayments, and the bank files with their delivery over SFTP."""
