// Package discover finds what a fan-out runs over: the regions an account
// has enabled (ec2 DescribeRegions) and the accounts of an organization
// (Organizations ListAccounts).
//
// It is the only package of this module that imports the EC2 and
// Organizations clients, which are large to compile: a program that fans
// out over a fixed list, or over another service, imports the root
// package alone and never builds them.
package discover
