#version 130
// A full-screen quad showing the low-resolution splat image drawn while the view moves.
attribute vec2 a_position;
varying vec2 v_uv;
void main() {
    v_uv = 0.5 * a_position + 0.5;
    gl_Position = vec4(a_position, 0.0, 1.0);
}
