"""Firmware for the MCU profiles: a compiled model (edgekd.ccompile) run on an emulated Cortex-M4F / Cortex-M7."""
