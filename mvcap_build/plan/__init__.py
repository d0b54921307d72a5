"""`mvcap plan`: what a build will cost (device-hours, wall time, disk, Hub size, shards), from
rates measured on a few of the pipeline's own objects here, or stored per GPU kind."""
