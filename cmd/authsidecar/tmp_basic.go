package main

const basicModeName = "basic"
